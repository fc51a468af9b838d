-- The CRL this node serves: one row, replaced by a CRL with a larger
-- number only (SaveCRL), so that the numbers published never go down.
CREATE TABLE current_crl (
	id          INTEGER PRIMARY KEY CHECK (id = 1),
	number      INTEGER NOT NULL,
	der         BLOB NOT NULL,
	this_update INTEGER NOT NULL, -- Unix microseconds
	next_update INTEGER NOT NULL
) STRICT;

-- Secrets the pages must keep across restarts (the key of the form
-- tokens).
CREATE TABLE shared_secrets (
	name       TEXT PRIMARY KEY,
	value      BLOB NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
