-- Expiry notices: contact details, the notices sent, the delivery log,
-- and leases that let one node of many run a job. Times are integer Unix
-- microseconds, UTC.

-- The webhook secret is kept as given: it signs every webhook body.
CREATE TABLE contacts (
	identity_id    TEXT PRIMARY KEY REFERENCES identities (id),
	email          TEXT NOT NULL,
	webhook_url    TEXT NOT NULL,
	webhook_secret TEXT NOT NULL,
	updated_at     INTEGER NOT NULL
) STRICT;

-- One row per (serial, threshold): each notice is sent once.
CREATE TABLE notices (
	serial    TEXT NOT NULL REFERENCES certificates (serial),
	threshold TEXT NOT NULL,
	sent_at   INTEGER NOT NULL,
	PRIMARY KEY (serial, threshold)
) STRICT, WITHOUT ROWID;

CREATE TABLE notice_deliveries (
	id          INTEGER PRIMARY KEY,
	serial      TEXT NOT NULL,
	identity_id TEXT NOT NULL,
	threshold   TEXT NOT NULL,
	channel     TEXT NOT NULL,
	target      TEXT NOT NULL,
	status      TEXT NOT NULL,
	error       TEXT NOT NULL,
	at          INTEGER NOT NULL
) STRICT;

CREATE INDEX notice_deliveries_identity ON notice_deliveries (identity_id, id);

CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	holder     TEXT NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;

-- The notice scan reads unrevoked certificates by expiry; the renewal
-- point (two thirds of the life) is in the index so that certificates
-- that crossed no threshold are skipped without reading their rows. The
-- expression must match the scan's exactly.
CREATE INDEX certificates_notice ON certificates
	(not_after, serial, not_after - (not_after - not_before) / 3)
	WHERE revoked_at IS NULL;

-- Renewals of a certificate: a renewed certificate gets no notices.
CREATE INDEX certificates_renewed_from ON certificates (renewed_from)
	WHERE renewed_from <> '';
