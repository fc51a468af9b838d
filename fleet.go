package mtlsid

import (
	"context"
	"time"
)

// EventKind names a committed change that every node sharing the database
// must learn of, to drop what it cached.
type EventKind string

// The event kinds.
const (
	// EventRevoked: the certificate Serial was revoked (directly, or
	// retired by a renewal).
	EventRevoked EventKind = "revoked"
	// EventRoles: a role of IdentityID at ServiceID was granted or taken
	// away.
	EventRoles EventKind = "roles"
	// EventRelation: something else ServiceID knows of IdentityID changed:
	// its local user, trust, secret, intrusion reports or consent.
	EventRelation EventKind = "relation"
	// EventCRL: a new CRL was saved (see FleetStore.SaveCRL).
	EventCRL EventKind = "crl"
	// EventReset: the feed (re)connected. Events committed while it was
	// down were missed: drop everything cached.
	EventReset EventKind = "reset"
)

// Event is one committed change, as FleetStore.Follow delivers it. Which
// fields are set depends on Kind.
type Event struct {
	Kind       EventKind
	Serial     string // EventRevoked
	ServiceID  string // EventRoles, EventRelation
	IdentityID string // EventRoles, EventRelation
}

// CRL is a signed certificate revocation list as the nodes share it.
type CRL struct {
	Number     int64
	DER        []byte
	ThisUpdate time.Time
	NextUpdate time.Time
}

// FleetStore is what lets any number of `serve` nodes share one database
// with no state of their own that another node needs.
type FleetStore interface {
	// Follow calls fn with every event committed through the database
	// until ctx ends, and then returns ctx's error. On PostgreSQL that is
	// every change by every process on the database (LISTEN/NOTIFY: an
	// event is sent only when its transaction commits); on SQLite, which
	// serves one node, every change committed through this Store value.
	// fn gets EventReset first, once Follow listens, and again whenever it
	// reconnects after losing the database: events in between were missed.
	// fn runs on Follow's goroutine, one event at a time; a slow fn delays
	// the events after it. Any number of Follow calls may run at once.
	Follow(ctx context.Context, fn func(Event)) error

	// SaveCRL stores crl as the current CRL unless the stored one has the
	// same or a larger Number; it reports whether it stored it. Followers
	// get EventCRL when it did.
	SaveCRL(ctx context.Context, crl CRL) (bool, error)
	// CurrentCRL returns the stored CRL: ErrNotFound if none was saved.
	CurrentCRL(ctx context.Context) (*CRL, error)

	// SharedSecret returns the secret stored under name; if there is none
	// it stores fresh first (which must not be empty), so the first
	// caller's value wins and every later caller, on any node, gets that
	// one. Secrets are kept as given, readable by whoever can read the
	// database.
	SharedSecret(ctx context.Context, name string, fresh []byte) ([]byte, error)
}
