package authority

import (
	"sync"
	"time"

	"github.com/mtlsid/mtlsid"
)

// recentCalls keeps the last Identity API answers about each identity, for
// the account test page. It lives in memory, so that inquiries cost no
// database write, and is bounded: perID answers in a ring per identity,
// grown as it fills, and maxIDs identities, the first asked about leaving
// first. (It held 50 answers for 100,000 identities, growing to hundreds
// of MB under a long inquiry load: docs/reliability.md, soak.)
type recentCalls struct {
	mu     sync.Mutex
	perID  int
	maxIDs int
	calls  map[string]*callRing
	order  []string // identities, oldest first, for eviction
}

// callRing holds an identity's last answers: buf fills up to perID, then
// next is where the oldest is, overwritten by the newest.
type callRing struct {
	buf  []mtlsid.Identification
	next int
}

func newRecentCalls(perID, maxIDs int) *recentCalls {
	return &recentCalls{perID: perID, maxIDs: maxIDs, calls: map[string]*callRing{}}
}

func (r *recentCalls) add(p *Profile, serviceID string, at time.Time) {
	if p.Certificate == nil {
		return
	}
	id := mtlsid.Identification{
		ServiceID: serviceID, IdentityID: p.Certificate.IdentityID, Serial: p.Authorizing,
		Method: p.Method, Outcome: standingName(p.Standing), At: at,
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ring := r.calls[id.IdentityID]
	if ring == nil {
		if len(r.order) >= r.maxIDs {
			delete(r.calls, r.order[0])
			r.order[0] = ""
			r.order = r.order[1:]
		}
		r.order = append(r.order, id.IdentityID)
		// Most identities are asked about a few times: the ring grows to
		// perID only for those asked about more (a full ring for each of
		// 10,000 identities asked about once was 28 MB of live heap for
		// the collector to scan).
		ring = &callRing{buf: make([]mtlsid.Identification, 0, min(r.perID, 2))}
		r.calls[id.IdentityID] = ring
	}
	if len(ring.buf) < r.perID {
		if len(ring.buf) == cap(ring.buf) {
			ring.buf = append(make([]mtlsid.Identification, 0, min(2*cap(ring.buf), r.perID)), ring.buf...)
		}
		ring.buf = append(ring.buf, id)
		return
	}
	ring.buf[ring.next] = id
	ring.next = (ring.next + 1) % r.perID
}

// get returns the identity's answers, oldest first.
func (r *recentCalls) get(identityID string) []mtlsid.Identification {
	r.mu.Lock()
	defer r.mu.Unlock()
	ring := r.calls[identityID]
	if ring == nil {
		return nil
	}
	out := make([]mtlsid.Identification, 0, len(ring.buf))
	out = append(out, ring.buf[ring.next:]...)
	return append(out, ring.buf[:ring.next]...)
}

// RecentCalls returns the latest Identity API answers about the identity,
// oldest first.
func (a *Authority) RecentCalls(identityID string) []mtlsid.Identification {
	return a.recent.get(identityID)
}

func standingName(s Standing) string {
	switch s {
	case StandingAuthorizationExpired:
		return "authorization expired"
	case StandingRevoked:
		return "revoked"
	case StandingExpired:
		return "expired"
	case StandingIntruder:
		return "intruder"
	case StandingNeedsValidation:
		return "needs validation"
	case StandingValid:
		return "valid"
	case StandingValidBound:
		return "valid, local user bound"
	}
	return "unknown"
}

// The bounds of recentCalls: at most about 20 MB of answers.
const (
	recentPerIdentity = 20
	recentIdentities  = 10_000
)
