package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

const certColumns = `serial, identity_id, profile, name, device_type, not_before, not_after,
	der, renewed_from, development, created_at, revoked_at, revocation_reason`

type scanner interface{ Scan(dest ...any) error }

func scanCertificate(row scanner) (mtlsid.Certificate, error) {
	var c mtlsid.Certificate
	var profile string
	var notBefore, notAfter, created int64
	var revoked sql.NullInt64
	err := row.Scan(&c.Serial, &c.IdentityID, &profile, &c.Name, &c.DeviceType, &notBefore, &notAfter,
		&c.DER, &c.RenewedFrom, &c.Development, &created, &revoked, &c.RevocationReason)
	if err != nil {
		return c, err
	}
	c.Profile = mtlsid.Profile(profile)
	c.NotBefore, c.NotAfter, c.CreatedAt = fromMicros(notBefore), fromMicros(notAfter), fromMicros(created)
	c.RevokedAt = fromOptMicros(revoked)
	return c, nil
}

// Certificate returns the certificate with this decimal serial: ErrNotFound.
func (s *Store) Certificate(ctx context.Context, serial string) (*mtlsid.Certificate, error) {
	c, err := scanCertificate(s.readStmts[selectCertificate].QueryRowContext(ctx, serial))
	if errors.Is(err, sql.ErrNoRows) {
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
	certs, err := queryCertificates(ctx, s.read,
		`SELECT `+certColumns+` FROM certificates WHERE identity_id = ? ORDER BY created_at, rowid`, identityID)
	return certs, fail("identity certificates", err)
}

// RevokedCertificates returns the certificates revoked and not expired at
// now, in the order they were revoked. As in Certificate.Status, a
// certificate whose NotAfter is now has not expired: leaving it off the CRL
// would let it pass for its last moment.
func (s *Store) RevokedCertificates(ctx context.Context, now time.Time) ([]mtlsid.Certificate, error) {
	certs, err := queryCertificates(ctx, s.read, `SELECT `+certColumns+` FROM certificates
		WHERE revoked_at IS NOT NULL AND not_after >= ? ORDER BY revoked_at, rowid`, micros(now))
	return certs, fail("revoked certificates", err)
}

func queryCertificates(ctx context.Context, db *sql.DB, query string, args ...any) ([]mtlsid.Certificate, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	certs := []mtlsid.Certificate{}
	for rows.Next() {
		c, err := scanCertificate(rows)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return certs, nil
}

// Revoke marks a certificate revoked at r.At (the transaction's time if
// zero) and appends r.Audit: ErrNotFound, or ErrRevoked if it already is.
// Revoking a development certificate also undoes its journal (see
// retireJournal) and appends an mtlsid.AuditJournalUndone event after
// r.Audit.
func (s *Store) Revoke(ctx context.Context, r mtlsid.Revocation) error {
	if !storeinput.Events([]mtlsid.AuditEvent{r.Audit}) {
		return storeinput.ErrText
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fail("revoke", err)
	}
	defer tx.Rollback()

	dev, refused, err := checkRevocable(ctx, tx, r.Serial)
	if err != nil {
		return fail("revoke", err)
	} else if refused != nil {
		return refused
	}
	at := tx.timeOr(r.At)
	if err := revoke(ctx, tx, r.Serial, at, r.Reason); err != nil {
		return fail("revoke", err)
	}
	tx.emit(mtlsid.Event{Kind: mtlsid.EventRevoked, Serial: r.Serial})
	events := []mtlsid.AuditEvent{r.Audit}
	if dev {
		ev, err := retireJournal(ctx, tx, r.Serial, nil, at, r.Audit.Actor)
		if err != nil {
			return fail("revoke", err)
		}
		events = append(events, *ev)
	}
	if err := appendAudit(ctx, tx, events); err != nil {
		return fail("revoke", err)
	}
	return fail("revoke", tx.commit(ctx))
}

// checkRevocable returns, as refused, why the certificate cannot be
// revoked, and whether it is a development certificate.
func checkRevocable(ctx context.Context, tx *tx, serial string) (dev bool, refused, err error) {
	var revoked sql.NullInt64
	err = tx.queryRow(ctx, selectRevokedAt, serial).Scan(&revoked, &dev)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("certificate %s: %w", serial, mtlsid.ErrNotFound), nil
	case err != nil:
		return false, nil, fmt.Errorf("read certificate %s: %w", serial, err)
	case revoked.Valid:
		return dev, fmt.Errorf("certificate %s: %w", serial, mtlsid.ErrRevoked), nil
	}
	return dev, nil, nil
}

// revoke revokes a certificate that checkRevocable has passed.
func revoke(ctx context.Context, tx *tx, serial string, at time.Time, reason int) error {
	res, err := tx.exec(ctx, updateRevoked, micros(at), reason, serial)
	if err != nil {
		return fmt.Errorf("revoke %s: %w", serial, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return fmt.Errorf("revoke %s: certificate changed under the write lock", serial)
	}
	return nil
}

// NextCRLNumber returns a number larger than any it returned before,
// starting at 1.
func (s *Store) NextCRLNumber(ctx context.Context) (int64, error) {
	var n int64
	err := s.write.QueryRowContext(ctx,
		`UPDATE crl_number SET number = number + 1 WHERE id = 1 RETURNING number`).Scan(&n)
	if err != nil {
		return 0, fail("next CRL number", err)
	}
	return n, nil
}

// Identity returns the identity with this ID: ErrNotFound.
func (s *Store) Identity(ctx context.Context, id string) (*mtlsid.Identity, error) {
	var i mtlsid.Identity
	var kind string
	var created int64
	err := s.readStmts[selectIdentity].QueryRowContext(ctx, id).Scan(&i.ID, &kind, &i.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("identity", err)
	}
	i.Kind, i.CreatedAt = mtlsid.IdentityKind(kind), fromMicros(created)
	return &i, nil
}
