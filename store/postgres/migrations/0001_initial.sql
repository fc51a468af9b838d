-- Tables are not schema-qualified: the connection's search_path decides.

CREATE TABLE identities (
	id         text PRIMARY KEY,
	kind       text NOT NULL,
	name       text NOT NULL,
	created_at timestamptz NOT NULL
);

CREATE TABLE certificates (
	serial            text PRIMARY KEY,
	-- Orders certificates created at the same moment as they were stored.
	ord               bigint GENERATED ALWAYS AS IDENTITY,
	identity_id       text NOT NULL REFERENCES identities (id),
	profile           text NOT NULL,
	name              text NOT NULL,
	device_type       text NOT NULL,
	not_before        timestamptz NOT NULL,
	not_after         timestamptz NOT NULL,
	der               bytea NOT NULL,
	renewed_from      text NOT NULL,
	created_at        timestamptz NOT NULL,
	revoked_at        timestamptz,
	revocation_reason integer NOT NULL
);

CREATE INDEX certificates_identity_id ON certificates (identity_id);

-- The CRL reads only revoked certificates.
CREATE INDEX certificates_revoked ON certificates (not_after) WHERE revoked_at IS NOT NULL;

CREATE TABLE tokens (
	hash        bytea PRIMARY KEY,
	purpose     text NOT NULL,
	identity_id text NOT NULL,
	label       text NOT NULL,
	created_by  text NOT NULL,
	created_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz,
	used_by     text NOT NULL
);

CREATE TABLE audit_log (
	seq       bigint PRIMARY KEY CHECK (seq > 0),
	time      timestamptz NOT NULL,
	type      text NOT NULL,
	actor     text NOT NULL,
	subject   text NOT NULL,
	detail    text NOT NULL,
	prev_hash bytea NOT NULL,
	hash      bytea NOT NULL
);

-- The hash chain is what shows tampering; this trigger only stops the
-- store's own code, or a careless operator, from rewriting history.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit_log is append-only';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The last entry of the chain. Every write transaction locks this row
-- first (SELECT ... FOR UPDATE): that is what makes writers take turns.
CREATE TABLE audit_head (
	id   boolean PRIMARY KEY DEFAULT true CHECK (id),
	seq  bigint NOT NULL,
	hash bytea NOT NULL
);

INSERT INTO audit_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

CREATE TABLE crl_number (
	id     boolean PRIMARY KEY DEFAULT true CHECK (id),
	number bigint NOT NULL
);

INSERT INTO crl_number (number) VALUES (0);
