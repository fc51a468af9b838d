package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

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
		if _, err := tx.ExecContext(ctx, `INSERT INTO organizations (id, name, email, created_at) VALUES (?, ?, ?, ?)`,
			o.ID, o.Name, o.Email, micros(created)); err != nil {
			return constraint(err, fmt.Sprintf("organization %s", o.ID))
		}
		if err := insertMember(ctx, tx, admin, created); err != nil {
			return err
		}
		return appendAudit(ctx, tx, []mtlsid.AuditEvent{audit})
	})
}

func insertMember(ctx context.Context, tx *tx, m mtlsid.Member, created time.Time) error {
	if !m.CreatedAt.IsZero() {
		created = norm(m.CreatedAt)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO org_members (org_id, identity_id, role, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (org_id, identity_id) DO UPDATE SET role = excluded.role`,
		m.OrgID, m.IdentityID, string(m.Role), micros(created))
	return constraint(err, fmt.Sprintf("organization %s or identity %s", m.OrgID, m.IdentityID))
}

// Org returns an organization: ErrNotFound.
func (s *Store) Org(ctx context.Context, id string) (*mtlsid.Organization, error) {
	var o mtlsid.Organization
	var created int64
	err := s.read.QueryRowContext(ctx, `SELECT id, name, email, created_at FROM organizations WHERE id = ?`, id).
		Scan(&o.ID, &o.Name, &o.Email, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("org", err)
	}
	o.CreatedAt = fromMicros(created)
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
		return appendAudit(ctx, tx, []mtlsid.AuditEvent{audit})
	})
}

const memberColumns = `org_id, identity_id, role, created_at`

func scanMember(row scanner) (mtlsid.Member, error) {
	var m mtlsid.Member
	var role string
	var created int64
	err := row.Scan(&m.OrgID, &m.IdentityID, &role, &created)
	m.Role, m.CreatedAt = mtlsid.OrgRole(role), fromMicros(created)
	return m, err
}

// Member returns an identity's membership of an organization: ErrNotFound
// if it is not a member.
func (s *Store) Member(ctx context.Context, orgID, identityID string) (*mtlsid.Member, error) {
	m, err := scanMember(s.read.QueryRowContext(ctx,
		`SELECT `+memberColumns+` FROM org_members WHERE org_id = ? AND identity_id = ?`, orgID, identityID))
	if errors.Is(err, sql.ErrNoRows) {
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
	ms, err := queryList(ctx, s.read, scanMember,
		`SELECT `+memberColumns+` FROM org_members WHERE org_id = ? ORDER BY created_at, identity_id`, orgID)
	return ms, fail("org members", err)
}

// Memberships lists the organizations an identity belongs to, oldest
// membership first (then by organization ID).
func (s *Store) Memberships(ctx context.Context, identityID string) ([]mtlsid.Member, error) {
	ms, err := queryList(ctx, s.read, scanMember,
		`SELECT `+memberColumns+` FROM org_members WHERE identity_id = ? ORDER BY created_at, org_id`, identityID)
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
		if _, err := tx.ExecContext(ctx, `INSERT INTO services (id, org_id, name, created_at) VALUES (?, ?, ?, ?)`,
			svc.ID, svc.OrgID, svc.Name, micros(created)); err != nil {
			return constraint(err, fmt.Sprintf("service %s of organization %s", svc.ID, svc.OrgID))
		}
		if _, err := tx.exec(ctx, insertIdentity, svc.ID, string(mtlsid.KindService), svc.Name, micros(created)); err != nil {
			return constraint(err, fmt.Sprintf("identity %s", svc.ID))
		}
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
		if err := insertDomain(ctx, tx, def); err != nil {
			return err
		}
		return appendAudit(ctx, tx, []mtlsid.AuditEvent{audit})
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

func insertDomain(ctx context.Context, tx *tx, d mtlsid.Domain) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO domains (`+domainColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		d.Name, d.ServiceID, d.Challenge, d.Default, optMicros(d.VerifiedAt), d.Method, micros(d.CreatedAt))
	return constraint(err, fmt.Sprintf("domain %s of service %s", d.Name, d.ServiceID))
}

// Service returns a service: ErrNotFound.
func (s *Store) Service(ctx context.Context, id string) (*mtlsid.Service, error) {
	svc, err := scanService(s.read.QueryRowContext(ctx, `SELECT `+serviceColumns+` FROM services WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("service", err)
	}
	return &svc, nil
}

const serviceColumns = `id, org_id, name, created_at`

func scanService(row scanner) (mtlsid.Service, error) {
	var svc mtlsid.Service
	var created int64
	err := row.Scan(&svc.ID, &svc.OrgID, &svc.Name, &created)
	svc.CreatedAt = fromMicros(created)
	return svc, err
}

// OrgServices lists an organization's services by name.
func (s *Store) OrgServices(ctx context.Context, orgID string) ([]mtlsid.Service, error) {
	svcs, err := queryList(ctx, s.read, scanService,
		`SELECT `+serviceColumns+` FROM services WHERE org_id = ? ORDER BY name, id`, orgID)
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
		if err := insertDomain(ctx, tx, d); err != nil {
			return err
		}
		return appendAudit(ctx, tx, []mtlsid.AuditEvent{audit})
	})
}

const domainColumns = `name, service_id, challenge, is_default, verified_at, method, created_at`

func scanDomain(row scanner) (mtlsid.Domain, error) {
	var d mtlsid.Domain
	var verified sql.NullInt64
	var created int64
	err := row.Scan(&d.Name, &d.ServiceID, &d.Challenge, &d.Default, &verified, &d.Method, &created)
	d.VerifiedAt, d.CreatedAt = fromOptMicros(verified), fromMicros(created)
	return d, err
}

// Domain returns a domain by name, in any case: ErrNotFound.
func (s *Store) Domain(ctx context.Context, name string) (*mtlsid.Domain, error) {
	d, err := scanDomain(s.read.QueryRowContext(ctx,
		`SELECT `+domainColumns+` FROM domains WHERE name = ?`, strings.ToLower(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("domain", err)
	}
	return &d, nil
}

// ServiceDomains lists a service's domains by name.
func (s *Store) ServiceDomains(ctx context.Context, serviceID string) ([]mtlsid.Domain, error) {
	ds, err := queryList(ctx, s.read, scanDomain,
		`SELECT `+domainColumns+` FROM domains WHERE service_id = ? ORDER BY name`, serviceID)
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
		n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE domains SET verified_at = ?, method = ? WHERE name = ?`,
			micros(tx.timeOr(at)), method, strings.ToLower(name)))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("domain %s: %w", name, mtlsid.ErrNotFound)
		}
		return appendAudit(ctx, tx, []mtlsid.AuditEvent{audit})
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
		if _, err := tx.ExecContext(ctx, `INSERT INTO service_roles (service_id, role, created_at) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, serviceID, role, micros(tx.now)); err != nil {
			return constraint(err, fmt.Sprintf("service %s", serviceID))
		}
		return appendAudit(ctx, tx, []mtlsid.AuditEvent{audit})
	})
}

// ServiceRoles lists the role names a service defined, sorted.
func (s *Store) ServiceRoles(ctx context.Context, serviceID string) ([]string, error) {
	roles, err := queryList(ctx, s.read, func(row scanner) (string, error) {
		var r string
		return r, row.Scan(&r)
	}, `SELECT role FROM service_roles WHERE service_id = ? ORDER BY role`, serviceID)
	return roles, fail("service roles", err)
}

// queryList runs a query on db and scans each row with scan. It returns an
// empty list, not nil, if there are no rows.
func queryList[T any](ctx context.Context, db *sql.DB, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return list, nil
}
