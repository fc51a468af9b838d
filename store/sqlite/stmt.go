package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// The statements that run on every issuance, token and certificate lookup
// are prepared once, at Open, and kept until Close: parsing SQL costs more
// CPU than running these point queries. A statement prepared on the write
// pool's one connection is bound to each transaction on that same
// connection, so SQLite never parses it again.

// writeQuery names a statement prepared on the write connection.
type writeQuery int

const (
	selectIssueState writeQuery = iota
	insertIdentity
	insertCertificate
	updateTokenUsed
	selectRevokedAt
	updateRevoked
	insertToken
	selectAuditHead
	insertAuditEntry
	updateAuditHead
	insertJournal
	numWriteQueries
)

var writeSQL = [numWriteQueries]string{
	// The state an issuance's checks need, in one row; see readIssueState.
	selectIssueState: `SELECT
		(SELECT used_at IS NOT NULL FROM tokens WHERE hash = ?1),
		(SELECT expires_at FROM tokens WHERE hash = ?1),
		EXISTS (SELECT 1 FROM identities WHERE id = ?2),
		EXISTS (SELECT 1 FROM identities WHERE id = ?3),
		EXISTS (SELECT 1 FROM certificates WHERE serial = ?4),
		(SELECT revoked_at IS NOT NULL FROM certificates WHERE serial = ?5),
		(SELECT development FROM certificates WHERE serial = ?5)`,
	insertIdentity: `INSERT INTO identities (id, kind, name, created_at) VALUES (?, ?, ?, ?)`,
	insertCertificate: `INSERT INTO certificates (` + certColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	// The condition repeats the issuance's check; see issue.
	updateTokenUsed: `UPDATE tokens SET used_at = ?, used_by = ?
		WHERE hash = ? AND used_at IS NULL AND expires_at > ?`,
	selectRevokedAt: `SELECT revoked_at, development FROM certificates WHERE serial = ?`,
	updateRevoked: `UPDATE certificates SET revoked_at = ?, revocation_reason = ?
		WHERE serial = ? AND revoked_at IS NULL`,
	insertToken: `
		INSERT INTO tokens (hash, purpose, identity_id, label, created_by, created_at, expires_at, used_at, used_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (hash) DO NOTHING`,
	selectAuditHead: `SELECT seq, hash FROM audit_head WHERE id = 1`,
	insertAuditEntry: `
		INSERT INTO audit_log (seq, time, type, actor, subject, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	updateAuditHead: `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`,
	// The entry goes after the serial's newest; see journal.
	insertJournal: `
		INSERT INTO dev_journal (serial, seq, at, kind, service_id, identity_id, key, before)
		SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7 FROM dev_journal WHERE serial = ?1`,
}

// readQuery names a statement prepared on the read pool.
type readQuery int

const (
	selectToken readQuery = iota
	selectCertificate
	selectRelation
	selectInquiry
	selectIdentity
	numReadQueries
)

var readSQL = [numReadQueries]string{
	selectToken: `
		SELECT hash, purpose, identity_id, label, created_by, created_at, expires_at, used_at, used_by
		FROM tokens WHERE hash = ?`,
	selectCertificate: `SELECT ` + certColumns + ` FROM certificates WHERE serial = ?`,
	// Everything Relation returns, in one row.
	selectRelation: `SELECT ` + relationColumns("?1", "?2") + `
		FROM (SELECT 1) LEFT JOIN local_users lu ON lu.service_id = ?1 AND lu.identity_id = ?2`,
	selectInquiry: `SELECT c.*, i.created_at, ` + relationColumns("?1", "c.identity_id") + `
		FROM (SELECT ` + certColumns + ` FROM certificates WHERE serial = ?2) c
		JOIN identities i ON i.id = c.identity_id
		LEFT JOIN local_users lu ON lu.service_id = ?1 AND lu.identity_id = c.identity_id`,
	selectIdentity: `SELECT id, kind, name, created_at FROM identities WHERE id = ?`,
}

// relationColumns are Relation's columns (see scanRelation) for the
// service and identity the two SQL expressions give, with local_users
// joined as lu. Lists are joined with NUL, which no stored text holds.
func relationColumns(service, identity string) string {
	return strings.NewReplacer("@s", service, "@i", identity).Replace(`
		(SELECT group_concat(role, char(0)) FROM role_grants WHERE service_id = @s AND identity_id = @i),
		lu.name, lu.age_days, lu.created_at,
		(SELECT tokens FROM trust WHERE service_id = @s AND identity_id = @i),
		(SELECT secret FROM secrets WHERE service_id = @s AND identity_id = @i),
		(SELECT count(*) FROM intrusions WHERE service_id = @s AND identity_id = @i),
		(SELECT created_at FROM consents WHERE service_id = @s AND identity_id = @i),
		(SELECT coalesce(sum(tokens), 0) FROM trust WHERE identity_id = @i),
		(SELECT group_concat(service_id, char(0)) FROM trust WHERE identity_id = @i AND tokens > 0),
		(SELECT count(*) FROM consents WHERE identity_id = @i)`)
}

// prepare prepares the statements of both pools. On failure it closes
// those it prepared.
func (s *Store) prepare(ctx context.Context) error {
	for q, query := range writeSQL {
		st, err := s.write.PrepareContext(ctx, query)
		if err != nil {
			return errors.Join(fmt.Errorf("prepare: %w", err), s.closeStmts())
		}
		s.writeStmts[q] = st
	}
	for q, query := range readSQL {
		st, err := s.read.PrepareContext(ctx, query)
		if err != nil {
			return errors.Join(fmt.Errorf("prepare: %w", err), s.closeStmts())
		}
		s.readStmts[q] = st
	}
	return nil
}

// closeStmts closes the prepared statements, skipping those never made.
func (s *Store) closeStmts() error {
	var errs []error
	for _, st := range append(s.writeStmts[:], s.readStmts[:]...) {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// stmt returns the prepared statement q bound to the transaction, binding it
// the first time the transaction uses it.
func (tx *tx) stmt(ctx context.Context, q writeQuery) *sql.Stmt {
	if tx.bound[q] == nil {
		tx.bound[q] = tx.StmtContext(ctx, tx.prepared[q])
	}
	return tx.bound[q]
}

func (tx *tx) exec(ctx context.Context, q writeQuery, args ...any) (sql.Result, error) {
	return tx.stmt(ctx, q).ExecContext(ctx, args...)
}

func (tx *tx) queryRow(ctx context.Context, q writeQuery, args ...any) *sql.Row {
	return tx.stmt(ctx, q).QueryRowContext(ctx, args...)
}
