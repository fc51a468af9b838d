package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

const certColumns = `serial, identity_id, profile, name, device_type, not_before, not_after,
	der, renewed_from, development, created_at, revoked_at, revocation_reason`

func scanCertificate(row pgx.Row) (mtlsid.Certificate, error) {
	var c mtlsid.Certificate
	var profile string
	var revoked *time.Time
	err := row.Scan(&c.Serial, &c.IdentityID, &profile, &c.Name, &c.DeviceType, &c.NotBefore, &c.NotAfter,
		&c.DER, &c.RenewedFrom, &c.Development, &c.CreatedAt, &revoked, &c.RevocationReason)
	if err != nil {
		return c, err
	}
	c.Profile = mtlsid.Profile(profile)
	c.NotBefore, c.NotAfter, c.CreatedAt = c.NotBefore.UTC(), c.NotAfter.UTC(), c.CreatedAt.UTC()
	c.RevokedAt = fromOptTime(revoked)
	return c, nil
}

// Certificate returns the certificate with this decimal serial: ErrNotFound.
func (s *Store) Certificate(ctx context.Context, serial string) (*mtlsid.Certificate, error) {
	if !storeinput.Text(serial) {
		return nil, mtlsid.ErrNotFound // PostgreSQL would fail the query; nothing stored has it
	}
	c, err := scanCertificate(s.pool.QueryRow(ctx, `SELECT `+certColumns+` FROM certificates WHERE serial = $1`, serial))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("certificate", err)
	}
	return &c, nil
}

// IdentityCertificates returns an identity's certificates, oldest (by
// CreatedAt) first, those created at the same moment in the order they were
// stored. An identity with no certificates, or none at all, has an empty
// list.
func (s *Store) IdentityCertificates(ctx context.Context, identityID string) ([]mtlsid.Certificate, error) {
	if !storeinput.Text(identityID) {
		return []mtlsid.Certificate{}, nil
	}
	certs, err := s.queryCertificates(ctx,
		`SELECT `+certColumns+` FROM certificates WHERE identity_id = $1 ORDER BY created_at, ord`, identityID)
	return certs, fail("identity certificates", err)
}

// RevokedCertificates returns the certificates revoked and not expired at
// now, in the order they were revoked. As in Certificate.Status, a
// certificate whose NotAfter is now has not expired: leaving it off the CRL
// would let it pass for its last moment.
func (s *Store) RevokedCertificates(ctx context.Context, now time.Time) ([]mtlsid.Certificate, error) {
	certs, err := s.queryCertificates(ctx, `SELECT `+certColumns+` FROM certificates
		WHERE revoked_at IS NOT NULL AND not_after >= $1 ORDER BY revoked_at, ord`, norm(now))
	return certs, fail("revoked certificates", err)
}

func (s *Store) queryCertificates(ctx context.Context, query string, args ...any) ([]mtlsid.Certificate, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	certs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mtlsid.Certificate, error) {
		return scanCertificate(row)
	})
	if err != nil {
		return nil, err
	}
	if certs == nil {
		certs = []mtlsid.Certificate{}
	}
	return certs, nil
}

// Revoke marks a certificate revoked at r.At (the transaction's time if
// zero) and appends r.Audit: ErrNotFound, or ErrRevoked if it already is.
// Revoking a development certificate also undoes its journal (see
// queueRetireJournal) and appends an mtlsid.AuditJournalUndone event after
// r.Audit.
func (s *Store) Revoke(ctx context.Context, r mtlsid.Revocation) error {
	if !storeinput.Text(r.Serial) {
		return fmt.Errorf("certificate %q: %w", r.Serial, mtlsid.ErrNotFound)
	}
	if !storeinput.Events([]mtlsid.AuditEvent{r.Audit}) {
		return storeinput.ErrText
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fail("revoke", err)
	}
	defer tx.Rollback(ctx)

	var revoked *time.Time
	var dev bool
	err = tx.QueryRow(ctx, `SELECT revoked_at, development FROM certificates WHERE serial = $1`, r.Serial).Scan(&revoked, &dev)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("certificate %s: %w", r.Serial, mtlsid.ErrNotFound)
	case err != nil:
		return fail("revoke", err)
	case revoked != nil:
		return fmt.Errorf("certificate %s: %w", r.Serial, mtlsid.ErrRevoked)
	}
	at := tx.timeOr(r.At)
	events := []mtlsid.AuditEvent{r.Audit}
	var b pgx.Batch
	queueRevoke(&b, r.Serial, at, r.Reason)
	tx.emit(mtlsid.Event{Kind: mtlsid.EventRevoked, Serial: r.Serial})
	if dev {
		entries, err := readJournal(ctx, tx, r.Serial)
		if err != nil {
			return fail("revoke", err)
		}
		events = append(events, *queueRetireJournal(&b, r.Serial, entries, nil, at, r.Audit.Actor))
		tx.emitUndone(entries)
	}
	queueAudit(tx, &b, events)
	tx.queueHead(&b)
	if err := tx.send(ctx, &b); err != nil {
		return fail("revoke", err)
	}
	return fail("revoke", tx.commit(ctx))
}

// queueRevoke queues the revocation of a certificate already checked to be
// stored and not revoked.
func queueRevoke(b *pgx.Batch, serial string, at time.Time, reason int) {
	b.Queue(`UPDATE certificates SET revoked_at = $1, revocation_reason = $2
		WHERE serial = $3 AND revoked_at IS NULL`, at, reason, serial).
		Exec(func(ct pgconn.CommandTag) error {
			if ct.RowsAffected() != 1 {
				return fmt.Errorf("revoke %s: certificate changed under the audit head lock", serial)
			}
			return nil
		})
}

// NextCRLNumber returns a number larger than any it returned before,
// starting at 1.
func (s *Store) NextCRLNumber(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `UPDATE crl_number SET number = number + 1 RETURNING number`).Scan(&n); err != nil {
		return 0, fail("next CRL number", err)
	}
	return n, nil
}

// Identity returns the identity with this ID: ErrNotFound.
func (s *Store) Identity(ctx context.Context, id string) (*mtlsid.Identity, error) {
	if !storeinput.Text(id) {
		return nil, mtlsid.ErrNotFound
	}
	var i mtlsid.Identity
	var kind string
	err := s.pool.QueryRow(ctx, `SELECT id, kind, name, created_at FROM identities WHERE id = $1`, id).
		Scan(&i.ID, &kind, &i.Name, &i.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("identity", err)
	}
	i.Kind, i.CreatedAt = mtlsid.IdentityKind(kind), i.CreatedAt.UTC()
	return &i, nil
}
