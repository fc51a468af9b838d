package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

// The RelationStore writes run through change (journal.go): one
// transaction with c.Audit, journaled when c.Development is set. A change
// naming an unknown service or identity is ErrNotFound.

// GrantRole grants a role; granting a held role changes nothing (and
// journals nothing) but is no error. A zero CreatedAt becomes c.At.
func (s *Store) GrantRole(ctx context.Context, g mtlsid.RoleGrant, c mtlsid.Change) error {
	if err := storeinput.Required("role", g.Role); err != nil {
		return err
	}
	if !storeinput.Text(g.ServiceID, g.IdentityID, g.Role) {
		return storeinput.ErrText
	}
	return s.change(ctx, "grant role", c, func(tx *tx, at time.Time) (*journalEntry, error) {
		created := at
		if !g.CreatedAt.IsZero() {
			created = norm(g.CreatedAt)
		}
		ct, err := tx.Exec(ctx, `INSERT INTO role_grants (service_id, identity_id, role, created_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, g.ServiceID, g.IdentityID, g.Role, created)
		if err != nil {
			return nil, constraint(err, fmt.Sprintf("service %s or identity %s", g.ServiceID, g.IdentityID))
		}
		if ct.RowsAffected() == 0 {
			return nil, nil
		}
		return &journalEntry{kind: journalRole, serviceID: g.ServiceID, identityID: g.IdentityID, key: g.Role}, nil
	})
}

// RevokeRole takes a role away: ErrNotFound if it was not held.
func (s *Store) RevokeRole(ctx context.Context, serviceID, identityID, role string, c mtlsid.Change) error {
	if !storeinput.Text(serviceID, identityID, role) {
		return storeinput.ErrText
	}
	return s.change(ctx, "revoke role", c, func(tx *tx, at time.Time) (*journalEntry, error) {
		var created time.Time
		err := tx.QueryRow(ctx, `DELETE FROM role_grants WHERE service_id = $1 AND identity_id = $2 AND role = $3
			RETURNING created_at`, serviceID, identityID, role).Scan(&created)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("role %q of %s at %s: %w", role, identityID, serviceID, mtlsid.ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		return &journalEntry{kind: journalRole, serviceID: serviceID, identityID: identityID, key: role,
			before: &image{CreatedAt: micros(created)}}, nil
	})
}

const grantColumns = `service_id, identity_id, role, created_at`

func scanGrant(row pgx.Row) (mtlsid.RoleGrant, error) {
	var g mtlsid.RoleGrant
	err := row.Scan(&g.ServiceID, &g.IdentityID, &g.Role, &g.CreatedAt)
	g.CreatedAt = g.CreatedAt.UTC()
	return g, err
}

// ServiceGrants lists a service's role grants by identity and role.
func (s *Store) ServiceGrants(ctx context.Context, serviceID string) ([]mtlsid.RoleGrant, error) {
	gs, err := queryList(ctx, s, scanGrant, []string{serviceID},
		`SELECT `+grantColumns+` FROM role_grants WHERE service_id = $1 ORDER BY identity_id, role`)
	return gs, fail("service grants", err)
}

// IdentityGrants lists an identity's role grants in every service, by
// service and role.
func (s *Store) IdentityGrants(ctx context.Context, identityID string) ([]mtlsid.RoleGrant, error) {
	gs, err := queryList(ctx, s, scanGrant, []string{identityID},
		`SELECT `+grantColumns+` FROM role_grants WHERE identity_id = $1 ORDER BY service_id, role`)
	return gs, fail("identity grants", err)
}

// BindLocalUser binds u.Name at the service to u.IdentityID, replacing the
// identity's earlier binding there: ErrLocalUserBound (changing nothing,
// appending no audit) if exactly this binding exists, ErrLocalUserTaken if
// the name belongs to another identity. A zero CreatedAt becomes c.At.
func (s *Store) BindLocalUser(ctx context.Context, u mtlsid.LocalUser, trust int, c mtlsid.Change) error {
	if err := storeinput.Required("local user name", u.Name); err != nil {
		return err
	}
	if !storeinput.Text(u.ServiceID, u.IdentityID, u.Name) {
		return storeinput.ErrText
	}
	return s.changeAll(ctx, "bind local user", c, func(tx *tx, at time.Time) ([]*journalEntry, error) {
		var holder string
		err := tx.QueryRow(ctx, `SELECT identity_id FROM local_users WHERE service_id = $1 AND name = $2`,
			u.ServiceID, u.Name).Scan(&holder)
		switch {
		case err == nil && holder == u.IdentityID:
			return nil, mtlsid.ErrLocalUserBound
		case err == nil:
			return nil, mtlsid.ErrLocalUserTaken
		case !errors.Is(err, pgx.ErrNoRows):
			return nil, err
		}
		e := &journalEntry{kind: journalLocalUser, serviceID: u.ServiceID, identityID: u.IdentityID}
		var b image
		var created time.Time
		err = tx.QueryRow(ctx, `DELETE FROM local_users WHERE service_id = $1 AND identity_id = $2
			RETURNING name, age_days, created_at`, u.ServiceID, u.IdentityID).Scan(&b.Name, &b.AgeDays, &created)
		switch {
		case err == nil:
			b.CreatedAt = micros(created)
			e.before = &b
		case !errors.Is(err, pgx.ErrNoRows):
			return nil, err
		}
		created = at
		if !u.CreatedAt.IsZero() {
			created = norm(u.CreatedAt)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO local_users (service_id, identity_id, name, age_days, created_at)
			VALUES ($1, $2, $3, $4, $5)`, u.ServiceID, u.IdentityID, u.Name, u.AgeDays, created); err != nil {
			return nil, constraint(err, fmt.Sprintf("service %s or identity %s", u.ServiceID, u.IdentityID))
		}
		if trust == 0 {
			return []*journalEntry{e}, nil
		}
		// The binding's trust, in its transaction: never one without the other.
		t, err := addTrustTx(ctx, tx, at, u.ServiceID, u.IdentityID, trust)
		if err != nil || t == nil {
			return []*journalEntry{e}, err
		}
		return []*journalEntry{e, t}, nil
	})
}

// LocalUserIdentity returns the identity a service bound a local name to:
// ErrNotFound.
func (s *Store) LocalUserIdentity(ctx context.Context, serviceID, name string) (string, error) {
	if !storeinput.Text(serviceID, name) {
		return "", mtlsid.ErrNotFound
	}
	var id string
	err := s.pool.QueryRow(ctx, `SELECT identity_id FROM local_users WHERE service_id = $1 AND name = $2`,
		serviceID, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", mtlsid.ErrNotFound
	}
	return id, fail("local user identity", err)
}

// UnbindLocalUser removes a service's binding of a local name: ErrNotFound.
func (s *Store) UnbindLocalUser(ctx context.Context, serviceID, name string, c mtlsid.Change) error {
	if !storeinput.Text(serviceID, name) {
		return storeinput.ErrText
	}
	return s.change(ctx, "unbind local user", c, func(tx *tx, at time.Time) (*journalEntry, error) {
		e := &journalEntry{kind: journalLocalUser, serviceID: serviceID, before: &image{}}
		var created time.Time
		err := tx.QueryRow(ctx, `DELETE FROM local_users WHERE service_id = $1 AND name = $2
			RETURNING identity_id, name, age_days, created_at`, serviceID, name).
			Scan(&e.identityID, &e.before.Name, &e.before.AgeDays, &created)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("local user %q at %s: %w", name, serviceID, mtlsid.ErrNotFound)
		}
		e.before.CreatedAt = micros(created)
		return e, err
	})
}

// AddTrust adds tokens of trust (negative takes away); the result is kept
// within 0..10000. A change that leaves the count as it was writes and
// journals nothing.
func (s *Store) AddTrust(ctx context.Context, serviceID, identityID string, tokens int, c mtlsid.Change) error {
	if !storeinput.Text(serviceID, identityID) {
		return storeinput.ErrText
	}
	return s.change(ctx, "add trust", c, func(tx *tx, at time.Time) (*journalEntry, error) {
		return addTrustTx(ctx, tx, at, serviceID, identityID, tokens)
	})
}

// addTrustTx adds tokens of trust in tx: the journal entry that undoes
// it, or nil when the count stays as it was.
func addTrustTx(ctx context.Context, tx *tx, at time.Time, serviceID, identityID string, tokens int) (*journalEntry, error) {
	e := &journalEntry{kind: journalTrust, serviceID: serviceID, identityID: identityID}
	var b image
	var updated time.Time
	err := tx.QueryRow(ctx, `SELECT tokens, updated_at FROM trust WHERE service_id = $1 AND identity_id = $2`,
		serviceID, identityID).Scan(&b.Tokens, &updated)
	switch {
	case err == nil:
		b.UpdatedAt = micros(updated)
		e.before = &b
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, err
	}
	n := storeinput.AddTokens(b.Tokens, tokens)
	if n == b.Tokens {
		// Nothing changes, not even a row of 0 for a pair without one;
		// the identity and service are still checked.
		return nil, checkPair(ctx, tx, serviceID, identityID)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO trust (service_id, identity_id, tokens, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (service_id, identity_id) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at`,
		serviceID, identityID, n, at); err != nil {
		return nil, constraint(err, fmt.Sprintf("service %s or identity %s", serviceID, identityID))
	}
	return e, nil
}

// checkPair returns ErrNotFound unless both the service and the identity
// are stored: what the foreign keys check on a write that writes nothing.
func checkPair(ctx context.Context, tx *tx, serviceID, identityID string) error {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM services WHERE id = $1)
		AND EXISTS (SELECT 1 FROM identities WHERE id = $2)`, serviceID, identityID).Scan(&ok)
	if err == nil && !ok {
		return fmt.Errorf("service %s or identity %s: %w", serviceID, identityID, mtlsid.ErrNotFound)
	}
	return err
}

// SetSecret stores the service's secret for an identity; "" clears it. A
// change that leaves the secret as it was writes and journals nothing.
func (s *Store) SetSecret(ctx context.Context, serviceID, identityID, secret string, c mtlsid.Change) error {
	if !storeinput.Text(serviceID, identityID, secret) {
		return storeinput.ErrText
	}
	return s.change(ctx, "set secret", c, func(tx *tx, at time.Time) (*journalEntry, error) {
		e := &journalEntry{kind: journalSecret, serviceID: serviceID, identityID: identityID}
		var b image
		var updated time.Time
		err := tx.QueryRow(ctx, `SELECT secret, updated_at FROM secrets WHERE service_id = $1 AND identity_id = $2`,
			serviceID, identityID).Scan(&b.Secret, &updated)
		switch {
		case err == nil:
			b.UpdatedAt = micros(updated)
			e.before = &b
		case !errors.Is(err, pgx.ErrNoRows):
			return nil, err
		}
		switch {
		case secret == b.Secret: // also "" with no row
			return nil, checkPair(ctx, tx, serviceID, identityID)
		case secret == "":
			_, err = tx.Exec(ctx, `DELETE FROM secrets WHERE service_id = $1 AND identity_id = $2`, serviceID, identityID)
		default:
			_, err = tx.Exec(ctx, `INSERT INTO secrets (service_id, identity_id, secret, updated_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (service_id, identity_id) DO UPDATE SET secret = excluded.secret, updated_at = excluded.updated_at`,
				serviceID, identityID, secret, at)
		}
		if err != nil {
			return nil, constraint(err, fmt.Sprintf("service %s or identity %s", serviceID, identityID))
		}
		return e, nil
	})
}

// ReportIntrusion stores a report: ErrConflict if the service already
// reported this certificate, or if the reference is taken. A zero
// CreatedAt becomes c.At.
func (s *Store) ReportIntrusion(ctx context.Context, in mtlsid.Intrusion, c mtlsid.Change) error {
	if err := storeinput.Required("intrusion reference", in.Ref); err != nil {
		return err
	}
	if !storeinput.Text(in.Ref, in.ServiceID, in.IdentityID, in.Serial, in.Severity, in.Message, in.Detail) {
		return storeinput.ErrText
	}
	return s.change(ctx, "report intrusion", c, func(tx *tx, at time.Time) (*journalEntry, error) {
		created := at
		if !in.CreatedAt.IsZero() {
			created = norm(in.CreatedAt)
		}
		ct, err := tx.Exec(ctx, `INSERT INTO intrusions
			(ref, service_id, identity_id, serial, severity, message, detail, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
			in.Ref, in.ServiceID, in.IdentityID, in.Serial, in.Severity, in.Message, in.Detail, created)
		if err != nil {
			return nil, constraint(err, fmt.Sprintf("service %s or identity %s", in.ServiceID, in.IdentityID))
		}
		if ct.RowsAffected() == 0 {
			return nil, fmt.Errorf("intrusion report %s by %s on certificate %s: %w", in.Ref, in.ServiceID, in.Serial, mtlsid.ErrConflict)
		}
		return &journalEntry{kind: journalIntrusion, serviceID: in.ServiceID, identityID: in.IdentityID, key: in.Ref}, nil
	})
}

// WithdrawIntrusion removes the service's own report: ErrNotFound, also
// for another service's report.
func (s *Store) WithdrawIntrusion(ctx context.Context, serviceID, ref string, c mtlsid.Change) error {
	if !storeinput.Text(serviceID, ref) {
		return storeinput.ErrText
	}
	return s.change(ctx, "withdraw intrusion", c, func(tx *tx, at time.Time) (*journalEntry, error) {
		e := &journalEntry{kind: journalIntrusion, serviceID: serviceID, key: ref, before: &image{}}
		b := e.before
		var created time.Time
		err := tx.QueryRow(ctx, `DELETE FROM intrusions WHERE ref = $1 AND service_id = $2
			RETURNING identity_id, serial, severity, message, detail, created_at`, ref, serviceID).
			Scan(&e.identityID, &b.Serial, &b.Severity, &b.Message, &b.Detail, &created)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("intrusion report %s by %s: %w", ref, serviceID, mtlsid.ErrNotFound)
		}
		b.CreatedAt = micros(created)
		return e, err
	})
}

// relationQuery reads everything Relation returns, in one row.
// relationColumns are Relation's columns (see relationScan) for the
// service and identity the two SQL expressions give, with local_users
// joined as lu and t the identity's trust across services (trustTotals).
func relationColumns(service, identity string) string {
	return strings.NewReplacer("@s", service, "@i", identity).Replace(`
	(SELECT array_agg(role ORDER BY role) FROM role_grants WHERE service_id = @s AND identity_id = @i),
	lu.name, lu.age_days, lu.created_at,
	(SELECT tokens FROM trust WHERE service_id = @s AND identity_id = @i),
	(SELECT secret FROM secrets WHERE service_id = @s AND identity_id = @i),
	(SELECT count(*) FROM intrusions WHERE service_id = @s AND identity_id = @i),
	(SELECT created_at FROM consents WHERE service_id = @s AND identity_id = @i),
	t.total, t.sponsors,
	(SELECT count(*) FROM consents WHERE identity_id = @i)`)
}

// trustTotals is the join that gives relationColumns their t.
func trustTotals(identity string) string {
	return `(SELECT coalesce(sum(tokens), 0) AS total,
		array_agg(service_id ORDER BY service_id) FILTER (WHERE tokens > 0) AS sponsors
		FROM trust WHERE identity_id = ` + identity + `) t`
}

var (
	relationQuery = `SELECT ` + relationColumns("$1", "$2") + `
	FROM (SELECT 1) one
	LEFT JOIN local_users lu ON lu.service_id = $1 AND lu.identity_id = $2
	CROSS JOIN ` + trustTotals("$2")
	inquiryQuery = `SELECT c.*, i.created_at, ` + relationColumns("$1", "c.identity_id") + `
	FROM (SELECT ` + certColumns + ` FROM certificates WHERE serial = $2) c
		JOIN identities i ON i.id = c.identity_id
	LEFT JOIN local_users lu ON lu.service_id = $1 AND lu.identity_id = c.identity_id
	CROSS JOIN LATERAL ` + trustTotals("c.identity_id")
)

// Relation returns what the service knows of the identity, in one query:
// a zero Relation (nil lists) if nothing.
func (s *Store) Relation(ctx context.Context, serviceID, identityID string) (*mtlsid.Relation, error) {
	var rs relationScan
	if !storeinput.Text(serviceID, identityID) {
		return &rs.r, nil // nothing stored has it
	}
	if err := s.pool.QueryRow(ctx, relationQuery, serviceID, identityID).Scan(rs.dest()...); err != nil {
		return nil, fail("relation", err)
	}
	r := rs.relation(serviceID, identityID)
	return &r, nil
}

// relationScan receives relationColumns.
type relationScan struct {
	r                     mtlsid.Relation
	name, secret          *string
	age, tokens           *int
	created, shared       *time.Time
	intrusions, total, nw int64
}

func (rs *relationScan) dest() []any {
	return []any{&rs.r.Roles, &rs.name, &rs.age, &rs.created, &rs.tokens, &rs.secret, &rs.intrusions, &rs.shared,
		&rs.total, &rs.r.TrustSponsors, &rs.nw}
}

func (rs *relationScan) relation(serviceID, identityID string) mtlsid.Relation {
	r := rs.r
	if rs.name != nil {
		r.LocalUser = &mtlsid.LocalUser{ServiceID: serviceID, IdentityID: identityID, Name: *rs.name,
			AgeDays: *rs.age, CreatedAt: fromOptTime(rs.created)}
	}
	if rs.tokens != nil {
		r.TrustTokens = *rs.tokens
	}
	if rs.secret != nil {
		r.Secret = *rs.secret
	}
	r.Intrusions, r.SharedAt = int(rs.intrusions), fromOptTime(rs.shared)
	r.TrustTotal, r.SitesFrequented = int(rs.total), int(rs.nw)
	return r
}

// Inquiry reads a certificate, its identity's relation to the service and
// the identity's creation time in one query.
func (s *Store) Inquiry(ctx context.Context, serviceID, serial string) (*mtlsid.InquiryRecord, error) {
	if !storeinput.Text(serviceID, serial) {
		return nil, mtlsid.ErrNotFound // PostgreSQL would fail the query; nothing stored has it
	}
	var rec mtlsid.InquiryRecord
	var rs relationScan
	row := s.pool.QueryRow(ctx, inquiryQuery, serviceID, serial)
	c, err := scanCertificate(andScan{row, append([]any{&rec.IdentityCreated}, rs.dest()...)})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("inquiry", err)
	}
	rec.Certificate, rec.Relation = c, rs.relation(serviceID, c.IdentityID)
	rec.IdentityCreated = rec.IdentityCreated.UTC()
	return &rec, nil
}

// andScan scans a row whose first columns a scan function knows and whose
// others go to extra.
type andScan struct {
	row   pgx.Row
	extra []any
}

func (a andScan) Scan(dest ...any) error { return a.row.Scan(append(dest, a.extra...)...) }

// RecordConsent notes that the person shared their identity with the
// service at at (the transaction's time if zero). The first time counts:
// later calls change nothing and append no audit event, but succeed.
// Unknown service or identity: ErrNotFound.
func (s *Store) RecordConsent(ctx context.Context, serviceID, identityID string, at time.Time, audit mtlsid.AuditEvent) error {
	if !storeinput.Text(serviceID, identityID) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	return s.update(ctx, "record consent", func(tx *tx) error {
		ct, err := tx.Exec(ctx, `INSERT INTO consents (service_id, identity_id, created_at)
			VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, serviceID, identityID, tx.timeOr(at))
		if err != nil {
			return constraint(err, fmt.Sprintf("service %s or identity %s", serviceID, identityID))
		}
		if ct.RowsAffected() == 0 {
			return nil
		}
		tx.emit(mtlsid.Event{Kind: mtlsid.EventRelation, ServiceID: serviceID, IdentityID: identityID})
		return tx.appendAudit(ctx, audit)
	})
}
