// Package sqlite implements mtlsid.Store on a SQLite database file, for an
// authority that runs on one machine. It is built on modernc.org/sqlite and
// needs no cgo.
//
// The database runs in WAL mode with synchronous=FULL, so a write that a
// Store method acknowledged survives a crash or a power loss. Writes go
// through a single connection that begins every transaction IMMEDIATE, so
// writers queue for the lock instead of failing on a read-to-write upgrade;
// reads use a pool of their own and do not wait for writers.
//
// Where a Store method is given a zero time (an Issuance's or Revocation's
// At, a CreatedAt, an audit event's Time), it uses the time of the write
// transaction instead.
//
// Only cmd/mtlsid and tests import this package; everything else works
// through the mtlsid.Store interface.
package sqlite
