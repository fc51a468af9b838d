-- One-time links to join an organization; the secret is kept hashed.
CREATE TABLE org_invites (
	hash       BLOB PRIMARY KEY,
	org_id     TEXT NOT NULL REFERENCES organizations (id),
	role       TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER,
	used_by    TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX org_invites_org_id ON org_invites (org_id, created_at);

-- Names people give their devices on the pages, besides the certificate's
-- CN (which only a new certificate changes).
CREATE TABLE device_names (
	serial     TEXT PRIMARY KEY REFERENCES certificates (serial),
	name       TEXT NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;
