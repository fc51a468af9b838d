// Package postgres implements mtlsid.Store on PostgreSQL, for authorities
// that run several nodes on one database. It is built on pgx and its pool.
//
// Every write transaction first locks the head of the audit chain, so
// writers from any number of processes take turns, the chain never forks,
// and no two writers can deadlock on the rows they touch after it. The
// writes that append no audit event (CreateIntent, ConsumeIntent,
// NextCRLNumber) are single statements that take no such turn. The
// schema is migrated at Open under an advisory lock, so nodes may start at
// once. Tables are named without a schema: a search_path in the database
// URL chooses where they live.
//
// The nodes learn of one another's changes by LISTEN/NOTIFY (Follow): a
// write that makes cached answers stale (a revocation, a role, a relation,
// a new CRL) sends its events with pg_notify inside its own transaction,
// so they are delivered only if it commits. The channel is named after the
// schema, so that schemas sharing a database do not hear each other.
//
// A database that cannot be reached, or that is shutting down, gives errors
// that match mtlsid.ErrUnavailable (KindUnavailable), so callers can answer
// "try again".
//
// Where a Store method is given a zero time (an Issuance's or Revocation's
// At, a CreatedAt, an audit event's Time), it uses the time of the write
// transaction instead.
//
// Only cmd/mtlsid and tests import this package; everything else works
// through the mtlsid.Store interface.
package postgres
