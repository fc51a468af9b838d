-- One-time links to join an organization; the secret is kept hashed.
CREATE TABLE org_invites (
	hash       bytea PRIMARY KEY,
	org_id     text COLLATE "C" NOT NULL REFERENCES organizations (id),
	role       text NOT NULL,
	created_by text NOT NULL,
	created_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL,
	used_at    timestamptz,
	used_by    text NOT NULL DEFAULT ''
);

CREATE INDEX org_invites_org_id ON org_invites (org_id, created_at);

-- Names people give their devices on the pages, besides the certificate's
-- CN (which only a new certificate changes).
CREATE TABLE device_names (
	serial     text PRIMARY KEY REFERENCES certificates (serial),
	name       text NOT NULL,
	updated_at timestamptz NOT NULL
);
