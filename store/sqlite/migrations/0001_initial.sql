-- Times are integer Unix microseconds, UTC. NULL is a time not yet set
-- (revoked_at, used_at).

CREATE TABLE identities (
	id         TEXT PRIMARY KEY,
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE certificates (
	serial            TEXT PRIMARY KEY,
	identity_id       TEXT NOT NULL REFERENCES identities (id),
	profile           TEXT NOT NULL,
	name              TEXT NOT NULL,
	device_type       TEXT NOT NULL,
	not_before        INTEGER NOT NULL,
	not_after         INTEGER NOT NULL,
	der               BLOB NOT NULL,
	renewed_from      TEXT NOT NULL,
	created_at        INTEGER NOT NULL,
	revoked_at        INTEGER,
	revocation_reason INTEGER NOT NULL
) STRICT;

CREATE INDEX certificates_identity_id ON certificates (identity_id);

-- The CRL reads only revoked certificates.
CREATE INDEX certificates_revoked ON certificates (not_after) WHERE revoked_at IS NOT NULL;

CREATE TABLE tokens (
	hash        BLOB PRIMARY KEY,
	purpose     TEXT NOT NULL,
	identity_id TEXT NOT NULL,
	label       TEXT NOT NULL,
	created_by  TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	used_at     INTEGER,
	used_by     TEXT NOT NULL
) STRICT;

CREATE TABLE audit_log (
	seq       INTEGER PRIMARY KEY CHECK (seq > 0),
	time      INTEGER NOT NULL,
	type      TEXT NOT NULL,
	actor     TEXT NOT NULL,
	subject   TEXT NOT NULL,
	detail    TEXT NOT NULL,
	prev_hash BLOB NOT NULL,
	hash      BLOB NOT NULL
) STRICT;

-- The hash chain is what shows tampering; these triggers only stop the
-- store's own code, or a careless operator, from rewriting history.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit_log is append-only');
END;

-- The last entry of the chain, kept apart so that appending reads one row.
CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  INTEGER NOT NULL,
	hash BLOB NOT NULL
) STRICT;

INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE crl_number (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	number INTEGER NOT NULL
) STRICT;

INSERT INTO crl_number (id, number) VALUES (1, 0);
