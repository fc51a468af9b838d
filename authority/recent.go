package authority

import (
	"sync"
	"time"

	"github.com/mtlsid/mtlsid"
)

// recentCalls keeps the last Identity API answers about each identity, for
// the account test page. It lives in memory: bounded per identity and in
// the number of identities, it costs inquiries no database write.
type recentCalls struct {
	mu     sync.Mutex
	perID  int
	maxIDs int
	calls  map[string][]mtlsid.Identification
	order  []string // identities, oldest first, for eviction
}

func newRecentCalls(perID, maxIDs int) *recentCalls {
	return &recentCalls{perID: perID, maxIDs: maxIDs, calls: map[string][]mtlsid.Identification{}}
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
	list, ok := r.calls[id.IdentityID]
	if !ok {
		if len(r.order) >= r.maxIDs {
			delete(r.calls, r.order[0])
			r.order = r.order[1:]
		}
		r.order = append(r.order, id.IdentityID)
	}
	list = append(list, id)
	if len(list) > r.perID {
		list = list[len(list)-r.perID:]
	}
	r.calls[id.IdentityID] = list
}

func (r *recentCalls) get(identityID string) []mtlsid.Identification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]mtlsid.Identification(nil), r.calls[identityID]...)
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
