package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

// The AccountStore: consents, development journals, invites and device
// names.

func scanConsent(row pgx.Row) (mtlsid.Consent, error) {
	var c mtlsid.Consent
	err := row.Scan(&c.ServiceID, &c.IdentityID, &c.OrgID, &c.OrgName, &c.SharedAt)
	c.SharedAt = c.SharedAt.UTC()
	return c, err
}

// IdentityConsents lists the services an identity shared itself with,
// newest first (then by service ID), with their organization's name.
func (s *Store) IdentityConsents(ctx context.Context, identityID string) ([]mtlsid.Consent, error) {
	cs, err := queryList(ctx, s, scanConsent, []string{identityID}, `SELECT c.service_id, c.identity_id, s.org_id, o.name, c.created_at
		FROM consents c JOIN services s ON s.id = c.service_id JOIN organizations o ON o.id = s.org_id
		WHERE c.identity_id = $1 ORDER BY c.created_at DESC, c.service_id`)
	return cs, fail("identity consents", err)
}

// ServiceConsents lists the identities that shared themselves with a
// service, newest first (then by identity ID); OrgName is empty.
func (s *Store) ServiceConsents(ctx context.Context, serviceID string) ([]mtlsid.Consent, error) {
	cs, err := queryList(ctx, s, scanConsent, []string{serviceID}, `SELECT c.service_id, c.identity_id, s.org_id, '', c.created_at
		FROM consents c JOIN services s ON s.id = c.service_id
		WHERE c.service_id = $1 ORDER BY c.created_at DESC, c.identity_id`)
	return cs, fail("service consents", err)
}

// WithdrawConsent forgets that the identity shared itself with the
// service and appends audit: ErrNotFound if it had not.
func (s *Store) WithdrawConsent(ctx context.Context, serviceID, identityID string, audit mtlsid.AuditEvent) error {
	if !storeinput.Text(serviceID, identityID) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	return s.update(ctx, "withdraw consent", func(tx *tx) error {
		ct, err := tx.Exec(ctx, `DELETE FROM consents WHERE service_id = $1 AND identity_id = $2`, serviceID, identityID)
		if err != nil {
			return err
		}
		if ct.RowsAffected() == 0 {
			return fmt.Errorf("consent of %s to %s: %w", identityID, serviceID, mtlsid.ErrNotFound)
		}
		tx.emit(mtlsid.Event{Kind: mtlsid.EventRelation, ServiceID: serviceID, IdentityID: identityID})
		return tx.appendAudit(ctx, audit)
	})
}

// DevelopmentJournal lists the changes journaled under serial, newest
// first.
func (s *Store) DevelopmentJournal(ctx context.Context, serial string) ([]mtlsid.JournalEntry, error) {
	es, err := queryList(ctx, s, func(row pgx.Row) (mtlsid.JournalEntry, error) {
		var e mtlsid.JournalEntry
		err := row.Scan(&e.Serial, &e.Seq, &e.At, &e.Kind, &e.ServiceID, &e.IdentityID, &e.Key, &e.Created)
		e.At = e.At.UTC()
		return e, err
	}, []string{serial}, `SELECT serial, seq, at, kind, service_id, identity_id, key, before IS NULL
		FROM dev_journal WHERE serial = $1 ORDER BY seq DESC`)
	return es, fail("development journal", err)
}

const inviteColumns = `hash, org_id, role, created_by, created_at, expires_at, used_at, used_by`

func scanInvite(row pgx.Row) (mtlsid.Invite, error) {
	var in mtlsid.Invite
	var role string
	var used *time.Time
	err := row.Scan(&in.Hash, &in.OrgID, &role, &in.CreatedBy, &in.CreatedAt, &in.ExpiresAt, &used, &in.UsedBy)
	in.Role, in.CreatedAt, in.ExpiresAt, in.UsedAt = mtlsid.OrgRole(role), in.CreatedAt.UTC(), in.ExpiresAt.UTC(), fromOptTime(used)
	return in, err
}

// CreateInvite stores an unused invite and appends audit: ErrConflict on
// a duplicate hash, ErrNotFound for an unknown organization. A zero
// CreatedAt becomes the transaction's time.
func (s *Store) CreateInvite(ctx context.Context, in mtlsid.Invite, audit mtlsid.AuditEvent) error {
	if len(in.Hash) == 0 {
		return mtlsid.Errorf(mtlsid.KindInvalid, "invite hash is required")
	}
	if err := storeinput.Required("organization", in.OrgID, "role", string(in.Role)); err != nil {
		return err
	}
	if !storeinput.Text(in.OrgID, string(in.Role), in.CreatedBy) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	return s.update(ctx, "create invite", func(tx *tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO org_invites (hash, org_id, role, created_by, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, in.Hash, in.OrgID, string(in.Role), in.CreatedBy, tx.timeOr(in.CreatedAt), norm(in.ExpiresAt))
		if err != nil {
			return constraint(err, fmt.Sprintf("invite to %s", in.OrgID))
		}
		return tx.appendAudit(ctx, audit)
	})
}

// OrgInvites lists an organization's invites, newest first.
func (s *Store) OrgInvites(ctx context.Context, orgID string) ([]mtlsid.Invite, error) {
	ins, err := queryList(ctx, s, scanInvite, []string{orgID}, `SELECT `+inviteColumns+` FROM org_invites
		WHERE org_id = $1 ORDER BY created_at DESC, hash`)
	return ins, fail("org invites", err)
}

// AcceptInvite uses an invite and makes identityID a member with its role
// (an existing member keeps their role): ErrTokenUnknown, ErrTokenUsed,
// ErrTokenExpired; ErrNotFound for an unknown identity.
func (s *Store) AcceptInvite(ctx context.Context, hash []byte, identityID string, at time.Time, audit mtlsid.AuditEvent) (*mtlsid.Invite, error) {
	if !storeinput.Text(identityID) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return nil, storeinput.ErrText
	}
	var out mtlsid.Invite
	err := s.update(ctx, "accept invite", func(tx *tx) error {
		at := tx.timeOr(at)
		in, err := scanInvite(tx.QueryRow(ctx, `SELECT `+inviteColumns+` FROM org_invites WHERE hash = $1 FOR UPDATE`, hash))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return mtlsid.ErrTokenUnknown
		case err != nil:
			return err
		case !in.UsedAt.IsZero():
			return mtlsid.ErrTokenUsed
		case !at.Before(in.ExpiresAt):
			return mtlsid.ErrTokenExpired
		}
		if _, err := tx.Exec(ctx, `UPDATE org_invites SET used_at = $1, used_by = $2 WHERE hash = $3`, at, identityID, hash); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO org_members (org_id, identity_id, role, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (org_id, identity_id) DO NOTHING`, in.OrgID, identityID, string(in.Role), at)
		if err != nil {
			return constraint(err, fmt.Sprintf("identity %s", identityID))
		}
		in.UsedAt, in.UsedBy = at, identityID
		out = in
		return tx.appendAudit(ctx, audit)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SetDeviceName sets (or, with "", clears) the name given to a
// certificate and appends audit: ErrNotFound for an unknown serial.
func (s *Store) SetDeviceName(ctx context.Context, serial, name string, audit mtlsid.AuditEvent) error {
	if !storeinput.Text(serial, name) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	return s.update(ctx, "set device name", func(tx *tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM certificates WHERE serial = $1`, serial).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("certificate %s: %w", serial, mtlsid.ErrNotFound)
		}
		var err error
		if name == "" {
			_, err = tx.Exec(ctx, `DELETE FROM device_names WHERE serial = $1`, serial)
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO device_names (serial, name, updated_at) VALUES ($1, $2, $3)
				ON CONFLICT (serial) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at`,
				serial, name, tx.timeOr(audit.Time))
		}
		if err != nil {
			return constraint(err, fmt.Sprintf("certificate %s", serial))
		}
		return tx.appendAudit(ctx, audit)
	})
}

// DeviceNames returns the names set for an identity's certificates, by
// serial.
func (s *Store) DeviceNames(ctx context.Context, identityID string) (map[string]string, error) {
	pairs, err := queryList(ctx, s, func(row pgx.Row) ([2]string, error) {
		var p [2]string
		return p, row.Scan(&p[0], &p[1])
	}, []string{identityID}, `SELECT d.serial, d.name FROM device_names d JOIN certificates c ON c.serial = d.serial
		WHERE c.identity_id = $1`)
	if err != nil {
		return nil, fail("device names", err)
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		m[p[0]] = p[1]
	}
	return m, nil
}
