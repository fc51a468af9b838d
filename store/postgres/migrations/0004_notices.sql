-- Expiry notices: contact details, the notices sent, the delivery log,
-- and leases that let one node of many run a job.

-- The webhook secret is kept as given: it signs every webhook body.
CREATE TABLE contacts (
	identity_id    text PRIMARY KEY REFERENCES identities (id),
	email          text NOT NULL,
	webhook_url    text NOT NULL,
	webhook_secret text NOT NULL,
	updated_at     timestamptz NOT NULL
);

-- One row per (serial, threshold): each notice is sent once.
CREATE TABLE notices (
	serial    text NOT NULL REFERENCES certificates (serial),
	threshold text NOT NULL,
	sent_at   timestamptz NOT NULL,
	PRIMARY KEY (serial, threshold)
);

CREATE TABLE notice_deliveries (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	serial      text NOT NULL,
	identity_id text NOT NULL,
	threshold   text NOT NULL,
	channel     text NOT NULL,
	target      text NOT NULL,
	status      text NOT NULL,
	error       text NOT NULL,
	at          timestamptz NOT NULL
);

CREATE INDEX notice_deliveries_identity ON notice_deliveries (identity_id, id);

CREATE TABLE leases (
	name       text PRIMARY KEY,
	holder     text NOT NULL,
	expires_at timestamptz NOT NULL
);

-- The renewal point, two thirds of the way from not_before to not_after.
-- Epoch arithmetic keeps it independent of the session's time zone, which
-- is what lets it be IMMUTABLE and indexed.
CREATE FUNCTION mtlsid_renewal_point(nb timestamptz, na timestamptz) RETURNS timestamptz
	LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
	RETURN to_timestamp((extract(epoch FROM na) - (extract(epoch FROM na) - extract(epoch FROM nb)) / 3)::float8);

-- The notice scan reads unrevoked certificates by expiry; the renewal
-- point is in the index so that certificates that crossed no threshold
-- are skipped without reading their rows.
CREATE INDEX certificates_notice ON certificates
	(not_after, serial, mtlsid_renewal_point(not_before, not_after))
	WHERE revoked_at IS NULL;

-- Renewals of a certificate: a renewed certificate gets no notices.
CREATE INDEX certificates_renewed_from ON certificates (renewed_from)
	WHERE renewed_from <> '';
