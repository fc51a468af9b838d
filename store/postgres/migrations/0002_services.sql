-- Organizations, services, what services know of identities, the journal
-- of changes made with development certificates, and redirect sign-ons.
-- Text that lists are sorted by uses the "C" collation, so that they sort
-- by bytes, as on SQLite, whatever the database's locale.

ALTER TABLE certificates ADD COLUMN development boolean NOT NULL DEFAULT false;

CREATE TABLE organizations (
	id         text COLLATE "C" PRIMARY KEY,
	name       text NOT NULL,
	email      text NOT NULL,
	created_at timestamptz NOT NULL
);

CREATE TABLE org_members (
	org_id      text COLLATE "C" NOT NULL REFERENCES organizations (id),
	identity_id text COLLATE "C" NOT NULL REFERENCES identities (id),
	role        text NOT NULL,
	created_at  timestamptz NOT NULL,
	PRIMARY KEY (org_id, identity_id)
);

CREATE INDEX org_members_identity_id ON org_members (identity_id);

CREATE TABLE services (
	id         text COLLATE "C" PRIMARY KEY,
	org_id     text COLLATE "C" NOT NULL REFERENCES organizations (id),
	name       text COLLATE "C" NOT NULL,
	created_at timestamptz NOT NULL
);

CREATE INDEX services_org_id ON services (org_id, name);

CREATE TABLE domains (
	name        text COLLATE "C" PRIMARY KEY,
	service_id  text COLLATE "C" NOT NULL REFERENCES services (id),
	challenge   text NOT NULL,
	is_default  boolean NOT NULL,
	verified_at timestamptz,
	method      text NOT NULL,
	created_at  timestamptz NOT NULL
);

CREATE INDEX domains_service_id ON domains (service_id, name);

CREATE TABLE service_roles (
	service_id text COLLATE "C" NOT NULL REFERENCES services (id),
	role       text COLLATE "C" NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (service_id, role)
);

-- The relation tables are keyed by service, then identity: Relation reads
-- one key of each, and the identity indexes serve the totals across
-- services.

CREATE TABLE role_grants (
	service_id  text COLLATE "C" NOT NULL REFERENCES services (id),
	identity_id text COLLATE "C" NOT NULL REFERENCES identities (id),
	role        text COLLATE "C" NOT NULL,
	created_at  timestamptz NOT NULL,
	PRIMARY KEY (service_id, identity_id, role)
);

CREATE INDEX role_grants_identity_id ON role_grants (identity_id, service_id, role);

-- One binding per identity at a service, and one identity per name.
CREATE TABLE local_users (
	service_id  text COLLATE "C" NOT NULL REFERENCES services (id),
	identity_id text COLLATE "C" NOT NULL REFERENCES identities (id),
	name        text COLLATE "C" NOT NULL,
	age_days    integer NOT NULL,
	created_at  timestamptz NOT NULL,
	PRIMARY KEY (service_id, identity_id),
	UNIQUE (service_id, name)
);

CREATE TABLE trust (
	service_id  text COLLATE "C" NOT NULL REFERENCES services (id),
	identity_id text COLLATE "C" NOT NULL REFERENCES identities (id),
	tokens      integer NOT NULL CHECK (tokens BETWEEN 0 AND 10000),
	updated_at  timestamptz NOT NULL,
	PRIMARY KEY (service_id, identity_id)
);

CREATE INDEX trust_identity_id ON trust (identity_id, service_id) INCLUDE (tokens);

CREATE TABLE secrets (
	service_id  text COLLATE "C" NOT NULL REFERENCES services (id),
	identity_id text COLLATE "C" NOT NULL REFERENCES identities (id),
	secret      text NOT NULL,
	updated_at  timestamptz NOT NULL,
	PRIMARY KEY (service_id, identity_id)
);

CREATE TABLE intrusions (
	ref         text COLLATE "C" PRIMARY KEY,
	service_id  text COLLATE "C" NOT NULL REFERENCES services (id),
	identity_id text COLLATE "C" NOT NULL REFERENCES identities (id),
	serial      text COLLATE "C" NOT NULL,
	severity    text NOT NULL,
	message     text NOT NULL,
	detail      text NOT NULL,
	created_at  timestamptz NOT NULL,
	UNIQUE (service_id, serial)
);

CREATE INDEX intrusions_service_identity ON intrusions (service_id, identity_id);

CREATE TABLE consents (
	service_id  text COLLATE "C" NOT NULL REFERENCES services (id),
	identity_id text COLLATE "C" NOT NULL REFERENCES identities (id),
	created_at  timestamptz NOT NULL,
	PRIMARY KEY (service_id, identity_id)
);

CREATE INDEX consents_identity_id ON consents (identity_id);

-- How to undo each change made with a development certificate, newest
-- last: the row's key and its image before the change (NULL: there was no
-- row). Revoking the certificate restores the images, newest first.
CREATE TABLE dev_journal (
	serial      text NOT NULL REFERENCES certificates (serial),
	seq         bigint NOT NULL,
	at          timestamptz NOT NULL,
	kind        text NOT NULL,
	service_id  text NOT NULL,
	identity_id text NOT NULL,
	key         text NOT NULL,
	before      jsonb,
	PRIMARY KEY (serial, seq)
);

CREATE TABLE intents (
	hash            bytea PRIMARY KEY,
	service_id      text COLLATE "C" NOT NULL REFERENCES services (id),
	type            text NOT NULL,
	return_url      text NOT NULL,
	strict_massl    boolean NOT NULL,
	local_user_name text NOT NULL,
	created_at      timestamptz NOT NULL,
	expires_at      timestamptz NOT NULL,
	identity_id     text NOT NULL,
	serial          text NOT NULL,
	resolved_at     timestamptz,
	consumed_at     timestamptz
);

-- For purging expired intents.
CREATE INDEX intents_expires_at ON intents (expires_at);
