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

// CreateOrg stores a new organization with its administrator and appends
// audit: ErrConflict if the ID is taken, ErrNotFound if the admin's
// identity is unknown. admin.OrgID may be empty; its Role must be empty or
// OrgAdministrator. Zero times become the transaction's time.
func (s *Store) CreateOrg(ctx context.Context, o mtlsid.Organization, admin mtlsid.Member, audit mtlsid.AuditEvent) error {
	if err := storeinput.Required("organization ID", o.ID, "administrator identity", admin.IdentityID); err != nil {
		return err
	}
	if admin.OrgID == "" {
		admin.OrgID = o.ID
	}
	if admin.Role == "" {
		admin.Role = mtlsid.OrgAdministrator
	}
	if admin.OrgID != o.ID || admin.Role != mtlsid.OrgAdministrator {
		return mtlsid.Errorf(mtlsid.KindInvalid, "the first member of %s must be its administrator", o.ID)
	}
	if !storeinput.Text(o.ID, o.Name, o.Email, admin.IdentityID) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	return s.update(ctx, "create org", func(tx *tx) error {
		created := tx.timeOr(o.CreatedAt)
		if _, err := tx.Exec(ctx, `INSERT INTO organizations (id, name, email, created_at) VALUES ($1, $2, $3, $4)`,
			o.ID, o.Name, o.Email, created); err != nil {
			return constraint(err, fmt.Sprintf("organization %s", o.ID))
		}
		if err := insertMember(ctx, tx, admin, created); err != nil {
			return err
		}
		return tx.appendAudit(ctx, audit)
	})
}

func insertMember(ctx context.Context, tx *tx, m mtlsid.Member, created time.Time) error {
	if !m.CreatedAt.IsZero() {
		created = norm(m.CreatedAt)
	}
	_, err := tx.Exec(ctx, `INSERT INTO org_members (org_id, identity_id, role, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id, identity_id) DO UPDATE SET role = excluded.role`,
		m.OrgID, m.IdentityID, string(m.Role), created)
	return constraint(err, fmt.Sprintf("organization %s or identity %s", m.OrgID, m.IdentityID))
}

// Org returns an organization: ErrNotFound.
func (s *Store) Org(ctx context.Context, id string) (*mtlsid.Organization, error) {
	if !storeinput.Text(id) {
		return nil, mtlsid.ErrNotFound // PostgreSQL would fail the query; nothing stored has it
	}
	var o mtlsid.Organization
	err := s.pool.QueryRow(ctx, `SELECT id, name, email, created_at FROM organizations WHERE id = $1`, id).
		Scan(&o.ID, &o.Name, &o.Email, &o.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("org", err)
	}
	o.CreatedAt = o.CreatedAt.UTC()
	return &o, nil
}

// SetMember adds a member, or changes the role of one (keeping its
// CreatedAt), and appends audit: ErrNotFound if the organization or the
// identity is unknown; KindInvalid for a role that is not one of the
// mtlsid.OrgRole constants.
func (s *Store) SetMember(ctx context.Context, m mtlsid.Member, audit mtlsid.AuditEvent) error {
	if m.Role.Rank() == 0 {
		return mtlsid.Errorf(mtlsid.KindInvalid, "unknown organization role %q", m.Role)
	}
	if !storeinput.Text(m.OrgID, m.IdentityID) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	return s.update(ctx, "set member", func(tx *tx) error {
		if err := insertMember(ctx, tx, m, tx.now); err != nil {
			return err
		}
		return tx.appendAudit(ctx, audit)
	})
}

const memberColumns = `org_id, identity_id, role, created_at`

func scanMember(row pgx.Row) (mtlsid.Member, error) {
	var m mtlsid.Member
	var role string
	err := row.Scan(&m.OrgID, &m.IdentityID, &role, &m.CreatedAt)
	m.Role, m.CreatedAt = mtlsid.OrgRole(role), m.CreatedAt.UTC()
	return m, err
}

// Member returns an identity's membership of an organization: ErrNotFound
// if it is not a member.
func (s *Store) Member(ctx context.Context, orgID, identityID string) (*mtlsid.Member, error) {
	if !storeinput.Text(orgID, identityID) {
		return nil, mtlsid.ErrNotFound
	}
	m, err := scanMember(s.pool.QueryRow(ctx,
		`SELECT `+memberColumns+` FROM org_members WHERE org_id = $1 AND identity_id = $2`, orgID, identityID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("member", err)
	}
	return &m, nil
}

// OrgMembers lists an organization's members, oldest first (then by
// identity ID). An unknown organization has none.
func (s *Store) OrgMembers(ctx context.Context, orgID string) ([]mtlsid.Member, error) {
	ms, err := queryList(ctx, s, scanMember, []string{orgID},
		`SELECT `+memberColumns+` FROM org_members WHERE org_id = $1 ORDER BY created_at, identity_id`)
	return ms, fail("org members", err)
}

// Memberships lists the organizations an identity belongs to, oldest
// membership first (then by organization ID).
func (s *Store) Memberships(ctx context.Context, identityID string) ([]mtlsid.Member, error) {
	ms, err := queryList(ctx, s, scanMember, []string{identityID},
		`SELECT `+memberColumns+` FROM org_members WHERE identity_id = $1 ORDER BY created_at, org_id`)
	return ms, fail("memberships", err)
}

// CreateService stores a service, the identity of its agents {ID: s.ID,
// KindService, Name: s.Name} and its default domain, and appends audit:
// ErrConflict if the service ID, that identity or the domain is taken;
// ErrNotFound if the organization is unknown. The domain is stored as the
// default one of the service (def.ServiceID may be empty), verified at
// def.VerifiedAt (else at the service's creation) by def.Method (else
// "default").
func (s *Store) CreateService(ctx context.Context, svc mtlsid.Service, def mtlsid.Domain, audit mtlsid.AuditEvent) error {
	if err := storeinput.Required("service ID", svc.ID, "organization ID", svc.OrgID, "domain", def.Name); err != nil {
		return err
	}
	if def.ServiceID == "" {
		def.ServiceID = svc.ID
	}
	if def.ServiceID != svc.ID {
		return mtlsid.Errorf(mtlsid.KindInvalid, "default domain %s is not of service %s", def.Name, svc.ID)
	}
	if err := checkDomainName(def.Name); err != nil {
		return err
	}
	if !storeinput.Text(svc.ID, svc.OrgID, svc.Name, def.Challenge, def.Method) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	return s.update(ctx, "create service", func(tx *tx) error {
		created := tx.timeOr(svc.CreatedAt)
		def.Default = true
		if def.VerifiedAt.IsZero() {
			def.VerifiedAt = created
		}
		if def.Method == "" {
			def.Method = "default"
		}
		if def.CreatedAt.IsZero() {
			def.CreatedAt = created
		}
		// One batch; the first statement to break a constraint names the
		// refusal, and the transaction goes no further.
		var b pgx.Batch
		b.Queue(`INSERT INTO services (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)`,
			svc.ID, svc.OrgID, svc.Name, created)
		b.Queue(`INSERT INTO identities (id, kind, name, created_at) VALUES ($1, $2, $3, $4)`,
			svc.ID, string(mtlsid.KindService), svc.Name, created)
		queueDomain(&b, def)
		if err := tx.send(ctx, &b); err != nil {
			return constraint(err, fmt.Sprintf("service %s of organization %s, its identity or domain %s", svc.ID, svc.OrgID, def.Name))
		}
		return tx.appendAudit(ctx, audit)
	})
}

// checkDomainName refuses an empty name, or one with upper-case letters:
// DNS names are compared in lower case, and the store keeps them so.
func checkDomainName(name string) error {
	if name == "" || name != strings.ToLower(name) {
		return mtlsid.Errorf(mtlsid.KindInvalid, "domain %q must be non-empty and in lower case", name)
	}
	if !storeinput.Text(name) {
		return storeinput.ErrText
	}
	return nil
}

func queueDomain(b *pgx.Batch, d mtlsid.Domain) {
	b.Queue(`INSERT INTO domains (`+domainColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		d.Name, d.ServiceID, d.Challenge, d.Default, optTime(d.VerifiedAt), d.Method, norm(d.CreatedAt))
}

// Service returns a service: ErrNotFound.
func (s *Store) Service(ctx context.Context, id string) (*mtlsid.Service, error) {
	if !storeinput.Text(id) {
		return nil, mtlsid.ErrNotFound
	}
	svc, err := scanService(s.pool.QueryRow(ctx, `SELECT `+serviceColumns+` FROM services WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("service", err)
	}
	return &svc, nil
}

const serviceColumns = `id, org_id, name, created_at`

func scanService(row pgx.Row) (mtlsid.Service, error) {
	var svc mtlsid.Service
	err := row.Scan(&svc.ID, &svc.OrgID, &svc.Name, &svc.CreatedAt)
	svc.CreatedAt = svc.CreatedAt.UTC()
	return svc, err
}

// OrgServices lists an organization's services by name.
func (s *Store) OrgServices(ctx context.Context, orgID string) ([]mtlsid.Service, error) {
	svcs, err := queryList(ctx, s, scanService, []string{orgID},
		`SELECT `+serviceColumns+` FROM services WHERE org_id = $1 ORDER BY name, id`)
	return svcs, fail("org services", err)
}

// AddDomain adds an unverified, non-default domain and appends audit:
// ErrConflict if any service has it, ErrNotFound if the service is
// unknown. A domain that claims to be verified or default is KindInvalid.
// A zero CreatedAt becomes the transaction's time.
func (s *Store) AddDomain(ctx context.Context, d mtlsid.Domain, audit mtlsid.AuditEvent) error {
	if err := checkDomainName(d.Name); err != nil {
		return err
	}
	if d.Default || d.Verified() || d.Method != "" {
		return mtlsid.Errorf(mtlsid.KindInvalid, "domain %s must be added unverified", d.Name)
	}
	if !storeinput.Text(d.ServiceID, d.Challenge) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	return s.update(ctx, "add domain", func(tx *tx) error {
		d.CreatedAt = tx.timeOr(d.CreatedAt)
		var b pgx.Batch
		queueDomain(&b, d)
		if err := tx.send(ctx, &b); err != nil {
			return constraint(err, fmt.Sprintf("domain %s of service %s", d.Name, d.ServiceID))
		}
		return tx.appendAudit(ctx, audit)
	})
}

const domainColumns = `name, service_id, challenge, is_default, verified_at, method, created_at`

func scanDomain(row pgx.Row) (mtlsid.Domain, error) {
	var d mtlsid.Domain
	var verified *time.Time
	err := row.Scan(&d.Name, &d.ServiceID, &d.Challenge, &d.Default, &verified, &d.Method, &d.CreatedAt)
	d.VerifiedAt, d.CreatedAt = fromOptTime(verified), d.CreatedAt.UTC()
	return d, err
}

// Domain returns a domain by name, in any case: ErrNotFound.
func (s *Store) Domain(ctx context.Context, name string) (*mtlsid.Domain, error) {
	if !storeinput.Text(name) {
		return nil, mtlsid.ErrNotFound
	}
	d, err := scanDomain(s.pool.QueryRow(ctx,
		`SELECT `+domainColumns+` FROM domains WHERE name = $1`, strings.ToLower(name)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("domain", err)
	}
	return &d, nil
}

// ServiceDomains lists a service's domains by name.
func (s *Store) ServiceDomains(ctx context.Context, serviceID string) ([]mtlsid.Domain, error) {
	ds, err := queryList(ctx, s, scanDomain, []string{serviceID},
		`SELECT `+domainColumns+` FROM domains WHERE service_id = $1 ORDER BY name`)
	return ds, fail("service domains", err)
}

// VerifyDomain marks a domain (named in any case) verified by method at
// at, the transaction's time if zero, and appends audit: ErrNotFound. A
// verified domain is verified again.
func (s *Store) VerifyDomain(ctx context.Context, name, method string, at time.Time, audit mtlsid.AuditEvent) error {
	if err := storeinput.Required("verification method", method); err != nil {
		return err
	}
	if !storeinput.Text(name, method) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	return s.update(ctx, "verify domain", func(tx *tx) error {
		ct, err := tx.Exec(ctx, `UPDATE domains SET verified_at = $1, method = $2 WHERE name = $3`,
			tx.timeOr(at), method, strings.ToLower(name))
		if err != nil {
			return err
		}
		if ct.RowsAffected() == 0 {
			return fmt.Errorf("domain %s: %w", name, mtlsid.ErrNotFound)
		}
		return tx.appendAudit(ctx, audit)
	})
}

// DefineRole adds a role name to a service and appends audit, also when
// the service had the role already: ErrNotFound if the service is
// unknown.
func (s *Store) DefineRole(ctx context.Context, serviceID, role string, audit mtlsid.AuditEvent) error {
	if err := storeinput.Required("role", role); err != nil {
		return err
	}
	if !storeinput.Text(serviceID, role) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	return s.update(ctx, "define role", func(tx *tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO service_roles (service_id, role, created_at) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, serviceID, role, tx.now); err != nil {
			return constraint(err, fmt.Sprintf("service %s", serviceID))
		}
		return tx.appendAudit(ctx, audit)
	})
}

// ServiceRoles lists the role names a service defined, sorted.
func (s *Store) ServiceRoles(ctx context.Context, serviceID string) ([]string, error) {
	roles, err := queryList(ctx, s, func(row pgx.Row) (string, error) {
		var r string
		return r, row.Scan(&r)
	}, []string{serviceID}, `SELECT role FROM service_roles WHERE service_id = $1 ORDER BY role`)
	return roles, fail("service roles", err)
}

// queryList runs a query with args on the pool and scans each row with
// scan. It returns an empty list, not nil, if there are no rows, and runs
// nothing if an argument is text PostgreSQL could not take: no stored row
// matches it.
func queryList[T any](ctx context.Context, s *Store, scan func(pgx.Row) (T, error), args []string, query string) ([]T, error) {
	if !storeinput.Text(args...) {
		return []T{}, nil
	}
	qargs := make([]any, len(args))
	for i, a := range args {
		qargs[i] = a
	}
	rows, err := s.pool.Query(ctx, query, qargs...)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []T{}
	}
	return list, nil
}
