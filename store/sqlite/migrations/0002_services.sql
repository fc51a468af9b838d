-- Organizations, services, what services know of identities, the journal
-- of changes made with development certificates, and redirect sign-ons.
-- Times are integer Unix microseconds, UTC; NULL is a time not yet set.

ALTER TABLE certificates ADD COLUMN development INTEGER NOT NULL DEFAULT 0;

CREATE TABLE organizations (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	email      TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE org_members (
	org_id      TEXT NOT NULL REFERENCES organizations (id),
	identity_id TEXT NOT NULL REFERENCES identities (id),
	role        TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	PRIMARY KEY (org_id, identity_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX org_members_identity_id ON org_members (identity_id);

CREATE TABLE services (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL REFERENCES organizations (id),
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX services_org_id ON services (org_id, name);

CREATE TABLE domains (
	name        TEXT PRIMARY KEY,
	service_id  TEXT NOT NULL REFERENCES services (id),
	challenge   TEXT NOT NULL,
	is_default  INTEGER NOT NULL,
	verified_at INTEGER,
	method      TEXT NOT NULL,
	created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX domains_service_id ON domains (service_id, name);

CREATE TABLE service_roles (
	service_id TEXT NOT NULL REFERENCES services (id),
	role       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (service_id, role)
) STRICT, WITHOUT ROWID;

-- The relation tables are keyed by service, then identity: Relation reads
-- one key of each, and the identity indexes serve the totals across
-- services.

CREATE TABLE role_grants (
	service_id  TEXT NOT NULL REFERENCES services (id),
	identity_id TEXT NOT NULL REFERENCES identities (id),
	role        TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	PRIMARY KEY (service_id, identity_id, role)
) STRICT, WITHOUT ROWID;

CREATE INDEX role_grants_identity_id ON role_grants (identity_id, service_id, role);

-- One binding per identity at a service, and one identity per name.
CREATE TABLE local_users (
	service_id  TEXT NOT NULL REFERENCES services (id),
	identity_id TEXT NOT NULL REFERENCES identities (id),
	name        TEXT NOT NULL,
	age_days    INTEGER NOT NULL,
	created_at  INTEGER NOT NULL,
	PRIMARY KEY (service_id, identity_id),
	UNIQUE (service_id, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE trust (
	service_id  TEXT NOT NULL REFERENCES services (id),
	identity_id TEXT NOT NULL REFERENCES identities (id),
	tokens      INTEGER NOT NULL CHECK (tokens BETWEEN 0 AND 10000),
	updated_at  INTEGER NOT NULL,
	PRIMARY KEY (service_id, identity_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX trust_identity_id ON trust (identity_id, service_id, tokens);

CREATE TABLE secrets (
	service_id  TEXT NOT NULL REFERENCES services (id),
	identity_id TEXT NOT NULL REFERENCES identities (id),
	secret      TEXT NOT NULL,
	updated_at  INTEGER NOT NULL,
	PRIMARY KEY (service_id, identity_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE intrusions (
	ref         TEXT PRIMARY KEY,
	service_id  TEXT NOT NULL REFERENCES services (id),
	identity_id TEXT NOT NULL REFERENCES identities (id),
	serial      TEXT NOT NULL,
	severity    TEXT NOT NULL,
	message     TEXT NOT NULL,
	detail      TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	UNIQUE (service_id, serial)
) STRICT;

CREATE INDEX intrusions_service_identity ON intrusions (service_id, identity_id);

CREATE TABLE consents (
	service_id  TEXT NOT NULL REFERENCES services (id),
	identity_id TEXT NOT NULL REFERENCES identities (id),
	created_at  INTEGER NOT NULL,
	PRIMARY KEY (service_id, identity_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX consents_identity_id ON consents (identity_id);

-- How to undo each change made with a development certificate, newest
-- last: the row's key and its image before the change (NULL: there was no
-- row). Revoking the certificate restores the images, newest first.
CREATE TABLE dev_journal (
	serial      TEXT NOT NULL REFERENCES certificates (serial),
	seq         INTEGER NOT NULL,
	at          INTEGER NOT NULL,
	kind        TEXT NOT NULL,
	service_id  TEXT NOT NULL,
	identity_id TEXT NOT NULL,
	key         TEXT NOT NULL,
	before      TEXT,
	PRIMARY KEY (serial, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE intents (
	hash            BLOB PRIMARY KEY,
	service_id      TEXT NOT NULL REFERENCES services (id),
	type            TEXT NOT NULL,
	return_url      TEXT NOT NULL,
	strict_massl    INTEGER NOT NULL,
	local_user_name TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL,
	identity_id     TEXT NOT NULL,
	serial          TEXT NOT NULL,
	resolved_at     INTEGER,
	consumed_at     INTEGER
) STRICT;

-- For purging expired intents.
CREATE INDEX intents_expires_at ON intents (expires_at);
