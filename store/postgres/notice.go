package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM identities WHERE id = $1)`, c.IdentityID).Scan(&known); err != nil {
			return err
		}
		if !known {
			return fmt.Errorf("identity %s: %w", c.IdentityID, mtlsid.ErrNotFound)
		}
		var err error
		if c.Email == "" && c.WebhookURL == "" {
			_, err = tx.Exec(ctx, `DELETE FROM contacts WHERE identity_id = $1`, c.IdentityID)
		} else {
			_, err = tx.Exec(ctx, `
				INSERT INTO contacts (identity_id, email, webhook_url, webhook_secret, updated_at)
				VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (identity_id) DO UPDATE SET email = excluded.email,
					webhook_url = excluded.webhook_url, webhook_secret = excluded.webhook_secret,
					updated_at = excluded.updated_at`,
				c.IdentityID, c.Email, c.WebhookURL, c.WebhookSecret, tx.timeOr(c.UpdatedAt))
		}
		if err != nil {
			return err
		}
		return tx.appendAudit(ctx, audit)
	})
}

// Contact returns an identity's contact details: ErrNotFound if it has
// none.
func (s *Store) Contact(ctx context.Context, identityID string) (*mtlsid.Contact, error) {
	if !storeinput.Text(identityID) {
		return nil, mtlsid.ErrNotFound
	}
	var c mtlsid.Contact
	err := s.pool.QueryRow(ctx, `SELECT identity_id, email, webhook_url, webhook_secret, updated_at
		FROM contacts WHERE identity_id = $1`, identityID).
		Scan(&c.IdentityID, &c.Email, &c.WebhookURL, &c.WebhookSecret, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("contact", err)
	}
	c.UpdatedAt = c.UpdatedAt.UTC()
	return &c, nil
}

// renewalPoint is the SQL of mtlsid.RenewalPoint on a certificates row c.
// It must match the expression of the certificates_notice index.
const renewalPoint = `mtlsid_renewal_point(c.not_before, c.not_after)`

// NoticesDue returns the notices due at q.Now; see mtlsid.NoticeStore.
func (s *Store) NoticesDue(ctx context.Context, q mtlsid.NoticeQuery) ([]mtlsid.DueNotice, error) {
	if len(q.Thresholds) == 0 || !storeinput.Text(q.AfterSerial) {
		return []mtlsid.DueNotice{}, nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	due, err := dueExpr(q.Thresholds, "$1")
	if err != nil {
		return nil, err
	}
	var maxBefore time.Duration
	renewal := false
	for _, th := range q.Thresholds {
		if th.Renewal {
			renewal = true
		} else {
			maxBefore = max(maxBefore, th.Before)
		}
	}
	now := norm(q.Now)
	// A certificate is a candidate if it crossed any threshold: its
	// renewal point passed, or it expires within the longest Before.
	crossed := `c.not_after <= $5`
	if renewal {
		crossed = `(c.not_after <= $5 OR ` + renewalPoint + ` <= $1)`
	}
	after := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	if !q.AfterNotAfter.IsZero() {
		after = norm(q.AfterNotAfter)
	}
	// The laterals with OFFSET 0 compute the renewal point and the due
	// threshold once per row (a flattened subquery would repeat them in
	// every clause that names them) while the rows stay in index order.
	due = strings.ReplaceAll(due, "c.rp", "r.rp")
	query := `SELECT c.serial, c.identity_id, c.profile, c.name, c.device_type, c.not_before, c.not_after,
			c.renewed_from, c.development, c.created_at, d.due,
			ct.identity_id, ct.email, ct.webhook_url, ct.webhook_secret, ct.updated_at,
			sv.id, sv.org_id, o.email
		FROM certificates c
		CROSS JOIN LATERAL (SELECT ` + renewalPoint + ` AS rp OFFSET 0) r
		CROSS JOIN LATERAL (SELECT ` + due + ` AS due OFFSET 0) d
		LEFT JOIN contacts ct ON ct.identity_id = c.identity_id
		LEFT JOIN services sv ON sv.id = c.identity_id
		LEFT JOIN organizations o ON o.id = sv.org_id
		WHERE c.revoked_at IS NULL AND c.not_after >= $2 AND (c.not_after, c.serial) > ($3, $4)
			AND ` + crossed + `
			AND d.due IS NOT NULL
			AND (ct.email <> '' OR ct.webhook_url <> '' OR o.email <> '')
			AND NOT EXISTS (SELECT 1 FROM certificates r WHERE r.renewed_from = c.serial AND r.renewed_from <> '' AND r.revoked_at IS NULL)
			AND NOT EXISTS (SELECT 1 FROM notices n WHERE n.serial = c.serial AND n.threshold = d.due)
		ORDER BY c.not_after, c.serial
		LIMIT $6`
	rows, err := s.pool.Query(ctx, query, now, now.Add(-mtlsid.NoticeGrace), after, q.AfterSerial, now.Add(maxBefore), limit)
	if err != nil {
		return nil, fail("notices due", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mtlsid.DueNotice, error) { return scanDueNotice(row) })
	if err != nil {
		return nil, fail("notices due", err)
	}
	if list == nil {
		list = []mtlsid.DueNotice{}
	}
	return list, nil
}

func scanDueNotice(row pgx.Row) (mtlsid.DueNotice, error) {
	var n mtlsid.DueNotice
	c := &n.Certificate
	var profile string
	var ctID, email, hook, secret, svc, org, orgEmail *string
	var ctUpdated *time.Time
	err := row.Scan(&c.Serial, &c.IdentityID, &profile, &c.Name, &c.DeviceType, &c.NotBefore, &c.NotAfter,
		&c.RenewedFrom, &c.Development, &c.CreatedAt, &n.Threshold,
		&ctID, &email, &hook, &secret, &ctUpdated, &svc, &org, &orgEmail)
	if err != nil {
		return n, err
	}
	c.Profile = mtlsid.Profile(profile)
	c.NotBefore, c.NotAfter, c.CreatedAt = c.NotBefore.UTC(), c.NotAfter.UTC(), c.CreatedAt.UTC()
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	if ctID != nil {
		n.Contact = mtlsid.Contact{IdentityID: *ctID, Email: str(email), WebhookURL: str(hook),
			WebhookSecret: str(secret), UpdatedAt: fromOptTime(ctUpdated)}
	}
	n.ServiceID, n.OrgID, n.OrgEmail = str(svc), str(org), str(orgEmail)
	return n, nil
}

// RecordNotice records a sent notice: ErrConflict if it already was,
// ErrNotFound if the certificate is unknown. It takes no lock on the
// audit chain: the primary key alone makes it once-only.
func (s *Store) RecordNotice(ctx context.Context, n mtlsid.SentNotice) error {
	if !storeinput.Text(n.Serial, n.Threshold) {
		return storeinput.ErrText
	}
	if err := storeinput.Required("serial", n.Serial, "threshold", n.Threshold); err != nil {
		return err
	}
	at := n.SentAt
	if at.IsZero() {
		at = time.Now()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO notices (serial, threshold, sent_at) VALUES ($1, $2, $3)`,
		n.Serial, n.Threshold, norm(at))
	return fail("record notice", constraint(err, "notice "+n.Threshold+" of "+n.Serial))
}

// SentNotices lists the notices recorded for a certificate, oldest first.
func (s *Store) SentNotices(ctx context.Context, serial string) ([]mtlsid.SentNotice, error) {
	list, err := queryList(ctx, s, func(row pgx.Row) (mtlsid.SentNotice, error) {
		var n mtlsid.SentNotice
		err := row.Scan(&n.Serial, &n.Threshold, &n.SentAt)
		n.SentAt = n.SentAt.UTC()
		return n, err
	}, []string{serial}, `SELECT serial, threshold, sent_at FROM notices WHERE serial = $1 ORDER BY sent_at, threshold`)
	return list, fail("sent notices", err)
}

// LogDelivery appends an attempt to the delivery log.
func (s *Store) LogDelivery(ctx context.Context, d mtlsid.Delivery) error {
	if !storeinput.Text(d.Serial, d.IdentityID, d.Threshold, d.Channel, d.Target, d.Status, d.Error) {
		return storeinput.ErrText
	}
	at := d.At
	if at.IsZero() {
		at = time.Now()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO notice_deliveries
		(serial, identity_id, threshold, channel, target, status, error, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		d.Serial, d.IdentityID, d.Threshold, d.Channel, d.Target, d.Status, d.Error, norm(at))
	return fail("log delivery", err)
}

// Deliveries returns an identity's newest deliveries, newest first, up to
// limit; identityID "" lists every identity's.
func (s *Store) Deliveries(ctx context.Context, identityID string, limit int) ([]mtlsid.Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	if !storeinput.Text(identityID) {
		return []mtlsid.Delivery{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id, serial, identity_id, threshold, channel, target, status, error, at
		FROM notice_deliveries WHERE $1 = '' OR identity_id = $1 ORDER BY id DESC LIMIT $2`, identityID, limit)
	if err != nil {
		return nil, fail("deliveries", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mtlsid.Delivery, error) {
		var d mtlsid.Delivery
		err := row.Scan(&d.ID, &d.Serial, &d.IdentityID, &d.Threshold, &d.Channel, &d.Target, &d.Status, &d.Error, &d.At)
		d.At = d.At.UTC()
		return d, err
	})
	if list == nil {
		list = []mtlsid.Delivery{}
	}
	return list, fail("deliveries", err)
}

// AcquireLease takes or extends a lease; see mtlsid.NoticeStore. The
// upsert's row lock decides between nodes that try at once.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	if !storeinput.Text(name, holder) {
		return false, storeinput.ErrText
	}
	if err := storeinput.Required("lease name", name, "lease holder", holder); err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= $4`,
		name, holder, norm(now.Add(ttl)), norm(now))
	if err != nil {
		return false, fail("acquire lease", err)
	}
	return tag.RowsAffected() == 1, nil
}

// RenewLease extends holder's unexpired lease.
func (s *Store) RenewLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	if !storeinput.Text(name, holder) {
		return false, nil
	}
	tag, err := s.pool.Exec(ctx, `UPDATE leases SET expires_at = $1
		WHERE name = $2 AND holder = $3 AND expires_at > $4`, norm(now.Add(ttl)), name, holder, norm(now))
	if err != nil {
		return false, fail("renew lease", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseLease gives up holder's lease, if it holds it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if !storeinput.Text(name, holder) {
		return nil
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder)
	return fail("release lease", err)
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
		at := fmt.Sprintf("(c.not_after - interval '%d microseconds')", th.Before.Microseconds())
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
