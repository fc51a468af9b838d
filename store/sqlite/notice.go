package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

// SetContact stores an identity's contact details with audit, or removes
// them when every channel is empty: ErrNotFound if the identity is
// unknown.
func (s *Store) SetContact(ctx context.Context, c mtlsid.Contact, audit mtlsid.AuditEvent) error {
	if !storeinput.Text(c.IdentityID, c.Email, c.WebhookURL, c.WebhookSecret) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	if err := storeinput.Required("identity", c.IdentityID); err != nil {
		return err
	}
	return s.update(ctx, "set contact", func(tx *tx) error {
		var known bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM identities WHERE id = ?)`, c.IdentityID).Scan(&known); err != nil {
			return err
		}
		if !known {
			return fmt.Errorf("identity %s: %w", c.IdentityID, mtlsid.ErrNotFound)
		}
		var err error
		if c.Email == "" && c.WebhookURL == "" {
			_, err = tx.ExecContext(ctx, `DELETE FROM contacts WHERE identity_id = ?`, c.IdentityID)
		} else {
			_, err = tx.ExecContext(ctx, `
				INSERT INTO contacts (identity_id, email, webhook_url, webhook_secret, updated_at)
				VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (identity_id) DO UPDATE SET email = excluded.email,
					webhook_url = excluded.webhook_url, webhook_secret = excluded.webhook_secret,
					updated_at = excluded.updated_at`,
				c.IdentityID, c.Email, c.WebhookURL, c.WebhookSecret, micros(tx.timeOr(c.UpdatedAt)))
		}
		if err != nil {
			return err
		}
		return appendAudit(ctx, tx, []mtlsid.AuditEvent{audit})
	})
}

// Contact returns an identity's contact details: ErrNotFound if it has
// none.
func (s *Store) Contact(ctx context.Context, identityID string) (*mtlsid.Contact, error) {
	var c mtlsid.Contact
	var updated int64
	err := s.read.QueryRowContext(ctx, `SELECT identity_id, email, webhook_url, webhook_secret, updated_at
		FROM contacts WHERE identity_id = ?`, identityID).
		Scan(&c.IdentityID, &c.Email, &c.WebhookURL, &c.WebhookSecret, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("contact", err)
	}
	c.UpdatedAt = fromMicros(updated)
	return &c, nil
}

// renewalPoint is the SQL of mtlsid.RenewalPoint on a certificates row c.
// It must match the expression of the certificates_notice index.
const renewalPoint = `(c.not_after - (c.not_after - c.not_before) / 3)`

// NoticesDue returns the notices due at q.Now; see mtlsid.NoticeStore.
func (s *Store) NoticesDue(ctx context.Context, q mtlsid.NoticeQuery) ([]mtlsid.DueNotice, error) {
	if len(q.Thresholds) == 0 {
		return []mtlsid.DueNotice{}, nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	due, err := dueExpr(q.Thresholds, "?1")
	if err != nil {
		return nil, err
	}
	var maxBefore int64
	renewal := false
	for _, th := range q.Thresholds {
		if th.Renewal {
			renewal = true
		} else {
			maxBefore = max(maxBefore, th.Before.Microseconds())
		}
	}
	now := micros(q.Now)
	// A certificate is a candidate if it crossed any threshold: its
	// renewal point passed, or it expires within the longest Before.
	crossed := `c.not_after <= ?5`
	if renewal {
		crossed = `(c.not_after <= ?5 OR ` + renewalPoint + ` <= ?1)`
	}
	after := int64(math.MinInt64)
	if !q.AfterNotAfter.IsZero() {
		after = micros(q.AfterNotAfter)
	}
	query := `SELECT c.serial, c.identity_id, c.profile, c.name, c.device_type, c.not_before, c.not_after,
			c.renewed_from, c.development, c.created_at, c.due,
			ct.identity_id, ct.email, ct.webhook_url, ct.webhook_secret, ct.updated_at,
			sv.id, sv.org_id, o.email
		FROM (
			SELECT c.*, ` + due + ` AS due
			FROM (SELECT c.serial, c.identity_id, c.profile, c.name, c.device_type, c.not_before, c.not_after,
					c.renewed_from, c.development, c.created_at, ` + renewalPoint + ` AS rp
				FROM certificates c INDEXED BY certificates_notice
				WHERE c.revoked_at IS NULL AND c.not_after >= ?2 AND (c.not_after, c.serial) > (?3, ?4)
					AND ` + crossed + `) c
		) c
		LEFT JOIN contacts ct ON ct.identity_id = c.identity_id
		LEFT JOIN services sv ON sv.id = c.identity_id
		LEFT JOIN organizations o ON o.id = sv.org_id
		WHERE c.due IS NOT NULL
			AND (ct.email <> '' OR ct.webhook_url <> '' OR o.email <> '')
			AND NOT EXISTS (SELECT 1 FROM certificates r WHERE r.renewed_from = c.serial AND r.renewed_from <> '' AND r.revoked_at IS NULL)
			AND NOT EXISTS (SELECT 1 FROM notices n WHERE n.serial = c.serial AND n.threshold = c.due)
		ORDER BY c.not_after, c.serial
		LIMIT ?6`
	list, err := queryList(ctx, s.read, scanDueNotice, query,
		now, now-mtlsid.NoticeGrace.Microseconds(), after, q.AfterSerial, now+maxBefore, limit)
	return list, fail("notices due", err)
}

func scanDueNotice(row scanner) (mtlsid.DueNotice, error) {
	var n mtlsid.DueNotice
	c := &n.Certificate
	var profile string
	var notBefore, notAfter, created int64
	var ctID, email, hook, secret, svc, org, orgEmail sql.NullString
	var ctUpdated sql.NullInt64
	err := row.Scan(&c.Serial, &c.IdentityID, &profile, &c.Name, &c.DeviceType, &notBefore, &notAfter,
		&c.RenewedFrom, &c.Development, &created, &n.Threshold,
		&ctID, &email, &hook, &secret, &ctUpdated, &svc, &org, &orgEmail)
	if err != nil {
		return n, err
	}
	c.Profile = mtlsid.Profile(profile)
	c.NotBefore, c.NotAfter, c.CreatedAt = fromMicros(notBefore), fromMicros(notAfter), fromMicros(created)
	if ctID.Valid {
		n.Contact = mtlsid.Contact{IdentityID: ctID.String, Email: email.String, WebhookURL: hook.String,
			WebhookSecret: secret.String, UpdatedAt: fromOptMicros(ctUpdated)}
	}
	n.ServiceID, n.OrgID, n.OrgEmail = svc.String, org.String, orgEmail.String
	return n, nil
}

// RecordNotice records a sent notice: ErrConflict if it already was,
// ErrNotFound if the certificate is unknown.
func (s *Store) RecordNotice(ctx context.Context, n mtlsid.SentNotice) error {
	if !storeinput.Text(n.Serial, n.Threshold) {
		return storeinput.ErrText
	}
	if err := storeinput.Required("serial", n.Serial, "threshold", n.Threshold); err != nil {
		return err
	}
	return s.update(ctx, "record notice", func(tx *tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO notices (serial, threshold, sent_at) VALUES (?, ?, ?)`,
			n.Serial, n.Threshold, micros(tx.timeOr(n.SentAt)))
		return constraint(err, "notice "+n.Threshold+" of "+n.Serial)
	})
}

// SentNotices lists the notices recorded for a certificate, oldest first.
func (s *Store) SentNotices(ctx context.Context, serial string) ([]mtlsid.SentNotice, error) {
	list, err := queryList(ctx, s.read, func(row scanner) (mtlsid.SentNotice, error) {
		var n mtlsid.SentNotice
		var at int64
		err := row.Scan(&n.Serial, &n.Threshold, &at)
		n.SentAt = fromMicros(at)
		return n, err
	}, `SELECT serial, threshold, sent_at FROM notices WHERE serial = ? ORDER BY sent_at, threshold`, serial)
	return list, fail("sent notices", err)
}

// LogDelivery appends an attempt to the delivery log.
func (s *Store) LogDelivery(ctx context.Context, d mtlsid.Delivery) error {
	if !storeinput.Text(d.Serial, d.IdentityID, d.Threshold, d.Channel, d.Target, d.Status, d.Error) {
		return storeinput.ErrText
	}
	return s.update(ctx, "log delivery", func(tx *tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO notice_deliveries
			(serial, identity_id, threshold, channel, target, status, error, at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			d.Serial, d.IdentityID, d.Threshold, d.Channel, d.Target, d.Status, d.Error, micros(tx.timeOr(d.At)))
		return err
	})
}

// Deliveries returns an identity's newest deliveries, newest first, up to
// limit; identityID "" lists every identity's.
func (s *Store) Deliveries(ctx context.Context, identityID string, limit int) ([]mtlsid.Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	where, args := "", []any{limit}
	if identityID != "" {
		where, args = "WHERE identity_id = ?", []any{identityID, limit}
	}
	list, err := queryList(ctx, s.read, func(row scanner) (mtlsid.Delivery, error) {
		var d mtlsid.Delivery
		var at int64
		err := row.Scan(&d.ID, &d.Serial, &d.IdentityID, &d.Threshold, &d.Channel, &d.Target, &d.Status, &d.Error, &at)
		d.At = fromMicros(at)
		return d, err
	}, `SELECT id, serial, identity_id, threshold, channel, target, status, error, at
		FROM notice_deliveries `+where+` ORDER BY id DESC LIMIT ?`, args...)
	return list, fail("deliveries", err)
}

// AcquireLease takes or extends a lease; see mtlsid.NoticeStore.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	if !storeinput.Text(name, holder) {
		return false, storeinput.ErrText
	}
	if err := storeinput.Required("lease name", name, "lease holder", holder); err != nil {
		return false, err
	}
	var n int64
	err := s.update(ctx, "acquire lease", func(tx *tx) (err error) {
		n, err = rowsAffected(tx.ExecContext(ctx, `
			INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4`,
			name, holder, micros(now.Add(ttl)), micros(now)))
		return err
	})
	return n == 1 && err == nil, err
}

// RenewLease extends holder's unexpired lease.
func (s *Store) RenewLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	var n int64
	err := s.update(ctx, "renew lease", func(tx *tx) (err error) {
		n, err = rowsAffected(tx.ExecContext(ctx, `UPDATE leases SET expires_at = ?
			WHERE name = ? AND holder = ? AND expires_at > ?`, micros(now.Add(ttl)), name, holder, micros(now)))
		return err
	})
	return n == 1 && err == nil, err
}

// ReleaseLease gives up holder's lease, if it holds it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.update(ctx, "release lease", func(tx *tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder)
		return err
	})
}

// dueExpr returns SQL that names the threshold of ths that a certificates
// row c (with its renewal point as c.rp) crossed most recently by now, or
// NULL: thresholds before NotBefore never count. The Before thresholds are
// ordered by their crossing without looking at the row, so the expression
// is a CASE, not a subquery per row. Names are quoted literals.
func dueExpr(ths []mtlsid.Threshold, now string) (string, error) {
	var befores []mtlsid.Threshold
	renewal := ""
	for _, th := range ths {
		if !storeinput.Text(th.Name) {
			return "", storeinput.ErrText
		}
		if th.Renewal {
			renewal = th.Name
		} else {
			befores = append(befores, th)
		}
	}
	slices.SortStableFunc(befores, func(a, b mtlsid.Threshold) int { return cmp.Compare(a.Before, b.Before) })
	lit := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	var name, cross strings.Builder
	name.WriteString("CASE")
	cross.WriteString("CASE")
	for _, th := range befores {
		at := fmt.Sprintf("(c.not_after - %d)", th.Before.Microseconds())
		fmt.Fprintf(&name, " WHEN %[1]s <= %[2]s AND %[1]s > c.not_before THEN %[3]s", at, now, lit(th.Name))
		fmt.Fprintf(&cross, " WHEN %[1]s <= %[2]s AND %[1]s > c.not_before THEN %[1]s", at, now)
	}
	name.WriteString(" END")
	cross.WriteString(" END")
	if len(befores) == 0 {
		name.Reset()
		name.WriteString("NULL")
	}
	if renewal == "" {
		return name.String(), nil
	}
	bcross := cross.String()
	if len(befores) == 0 {
		bcross = "NULL"
	}
	return fmt.Sprintf("CASE WHEN c.rp <= %[1]s AND c.rp > c.not_before AND (%[2]s IS NULL OR c.rp > %[2]s) THEN %[3]s ELSE %[4]s END",
		now, bcross, lit(renewal), name.String()), nil
}
