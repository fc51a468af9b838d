-- The CRL every node serves: one row, replaced by a CRL with a larger
-- number only (SaveCRL), so that the numbers nodes publish never go down.
CREATE TABLE current_crl (
	id          smallint PRIMARY KEY CHECK (id = 1),
	number      bigint NOT NULL,
	der         bytea NOT NULL,
	this_update timestamptz NOT NULL,
	next_update timestamptz NOT NULL
);

-- Secrets every node must share (the key of the pages' form tokens): the
-- first node to start generates one, every other reads it.
CREATE TABLE shared_secrets (
	name       text PRIMARY KEY,
	value      bytea NOT NULL,
	created_at timestamptz NOT NULL
);
