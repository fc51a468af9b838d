package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

// The development journal. A RelationStore change made with a development
// certificate (Change.Development) records, in its own transaction, the
// key of the one row it changed and that row's image before the change.
// Revoking the certificate restores the images, newest first, so the rows
// are as they were before the certificate's first change.
//
// Restoring does not look at what happened to a row since: if a
// production change (or another certificate) wrote the same row later,
// the undo still puts back the image from before the development change.
// The undo is the last writer, and it wins; changes to other rows stay.

// The kinds of journaled rows, each named by its key.
const (
	journalRole      = "role"       // role_grants (service, identity, role = key)
	journalLocalUser = "local_user" // local_users (service, identity)
	journalTrust     = "trust"      // trust (service, identity)
	journalSecret    = "secret"     // secrets (service, identity)
	journalIntrusion = "intrusion"  // intrusions (ref = key)
)

// journalEntry is how to undo one change.
type journalEntry struct {
	kind       string
	serviceID  string
	identityID string
	key        string
	before     *image // nil: the row did not exist
}

// image is the content of a journaled row besides its key, stored as JSON.
// Times are Unix microseconds.
type image struct {
	CreatedAt int64  `json:"created_at,omitempty"`
	UpdatedAt int64  `json:"updated_at,omitempty"`
	Name      string `json:"name,omitempty"`
	AgeDays   int    `json:"age_days,omitempty"`
	Tokens    int    `json:"tokens,omitempty"`
	Secret    string `json:"secret,omitempty"`
	Serial    string `json:"serial,omitempty"`
	Severity  string `json:"severity,omitempty"`
	Message   string `json:"message,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

// change runs a RelationStore write in one transaction: fn makes the
// change at at and returns the entry that undoes it, or nil if it changed
// nothing. c.Audit is appended whenever fn succeeds. A development change
// is journaled under c.By, which must be a stored, unrevoked development
// certificate.
func (s *Store) change(ctx context.Context, op string, c mtlsid.Change, fn func(tx *tx, at time.Time) (*journalEntry, error)) error {
	return s.changeAll(ctx, op, c, func(tx *tx, at time.Time) ([]*journalEntry, error) {
		e, err := fn(tx, at)
		if e == nil {
			return nil, err
		}
		return []*journalEntry{e}, err
	})
}

// changeAll is change for an operation that makes several undoable
// changes in its one transaction: they are journaled in order, and so
// undone in the reverse order.
func (s *Store) changeAll(ctx context.Context, op string, c mtlsid.Change, fn func(tx *tx, at time.Time) ([]*journalEntry, error)) error {
	if !storeinput.Text(c.By) || !storeinput.Events([]mtlsid.AuditEvent{c.Audit}) {
		return storeinput.ErrText
	}
	if c.Development && c.By == "" {
		return mtlsid.Errorf(mtlsid.KindInvalid, "a development change must name its certificate")
	}
	return s.update(ctx, op, func(tx *tx) error {
		at := tx.timeOr(c.At)
		if c.Development {
			if err := checkJournaling(ctx, tx, c.By); err != nil {
				return err
			}
		}
		es, err := fn(tx, at)
		if err != nil {
			return err
		}
		for _, e := range es {
			tx.emit(e.event())
			if c.Development {
				if err := journal(ctx, tx, c.By, at, e); err != nil {
					return err
				}
			}
		}
		return appendAudit(ctx, tx, []mtlsid.AuditEvent{c.Audit})
	})
}

// event is what followers learn of the change e undoes (or of its undo).
func (e *journalEntry) event() mtlsid.Event {
	k := mtlsid.EventRelation
	if e.kind == journalRole {
		k = mtlsid.EventRoles
	}
	return mtlsid.Event{Kind: k, ServiceID: e.serviceID, IdentityID: e.identityID}
}

// checkJournaling refuses to journal under a certificate that is unknown,
// revoked (its journal was undone already: a change journaled now would
// never be) or not a development certificate.
func checkJournaling(ctx context.Context, tx *tx, serial string) error {
	var revoked sql.NullInt64
	var dev bool
	err := tx.queryRow(ctx, selectRevokedAt, serial).Scan(&revoked, &dev)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("certificate %s making the change: %w", serial, mtlsid.ErrNotFound)
	case err != nil:
		return fmt.Errorf("read certificate %s: %w", serial, err)
	case revoked.Valid:
		return fmt.Errorf("certificate %s making the change: %w", serial, mtlsid.ErrRevoked)
	case !dev:
		return mtlsid.Errorf(mtlsid.KindInvalid, "certificate %s is not a development certificate", serial)
	}
	return nil
}

// journal appends e to serial's journal, after its newest entry.
func journal(ctx context.Context, tx *tx, serial string, at time.Time, e *journalEntry) error {
	var before any // NULL
	if e.before != nil {
		b, err := json.Marshal(e.before)
		if err != nil {
			return err
		}
		before = string(b)
	}
	if _, err := tx.exec(ctx, insertJournal, serial, micros(at), e.kind, e.serviceID, e.identityID, e.key, before); err != nil {
		return fmt.Errorf("journal change: %w", err)
	}
	return nil
}

// retireJournal deals with the journal of a development certificate that
// is being revoked at at. If successor is a development certificate that
// renews it, the journal passes to the successor and nil is returned.
// Otherwise every entry is undone, newest first, the journal is deleted,
// and the returned event, by actor, says how many changes were undone.
func retireJournal(ctx context.Context, tx *tx, serial string, successor *mtlsid.Certificate, at time.Time, actor string) (*mtlsid.AuditEvent, error) {
	if successor != nil && successor.Development && successor.RenewedFrom == serial {
		if _, err := tx.ExecContext(ctx, `UPDATE dev_journal SET serial = ? WHERE serial = ?`, successor.Serial, serial); err != nil {
			return nil, fmt.Errorf("pass journal of %s to %s: %w", serial, successor.Serial, err)
		}
		return nil, nil
	}
	entries, err := readJournal(ctx, tx, serial)
	if err != nil {
		return nil, err
	}
	for i := range entries {
		if err := undo(ctx, tx, &entries[i]); err != nil {
			return nil, fmt.Errorf("undo %s change of %s: %w", entries[i].kind, serial, err)
		}
		tx.emit(entries[i].event())
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM dev_journal WHERE serial = ?`, serial); err != nil {
		return nil, fmt.Errorf("delete journal of %s: %w", serial, err)
	}
	if actor == "" {
		actor = "system"
	}
	return &mtlsid.AuditEvent{Time: at, Type: mtlsid.AuditJournalUndone, Actor: actor, Subject: serial,
		Detail: fmt.Sprintf("undone=%d", len(entries))}, nil
}

// readJournal returns serial's journal, newest first.
func readJournal(ctx context.Context, tx *tx, serial string) ([]journalEntry, error) {
	rows, err := tx.QueryContext(ctx, `SELECT kind, service_id, identity_id, key, before
		FROM dev_journal WHERE serial = ? ORDER BY seq DESC`, serial)
	if err != nil {
		return nil, fmt.Errorf("read journal of %s: %w", serial, err)
	}
	defer rows.Close()
	var entries []journalEntry
	for rows.Next() {
		var e journalEntry
		var before sql.NullString
		if err := rows.Scan(&e.kind, &e.serviceID, &e.identityID, &e.key, &before); err != nil {
			return nil, fmt.Errorf("read journal of %s: %w", serial, err)
		}
		if before.Valid {
			e.before = new(image)
			if err := json.Unmarshal([]byte(before.String), e.before); err != nil {
				return nil, fmt.Errorf("journal of %s: %w", serial, err)
			}
		}
		entries = append(entries, e)
	}
	return entries, rows.Err()
}

// undo puts the row e names back as it was before the change: it deletes
// the row as it is now, and inserts the image, replacing any row that
// took the image's other unique keys (a local user's name, an intrusion's
// service and serial) since.
func undo(ctx context.Context, tx *tx, e *journalEntry) error {
	var err error
	exec := func(query string, args ...any) {
		if err == nil {
			_, err = tx.ExecContext(ctx, query, args...)
		}
	}
	b := e.before
	switch e.kind {
	case journalRole:
		exec(`DELETE FROM role_grants WHERE service_id = ? AND identity_id = ? AND role = ?`, e.serviceID, e.identityID, e.key)
		if b != nil {
			exec(`INSERT INTO role_grants (service_id, identity_id, role, created_at) VALUES (?, ?, ?, ?)`,
				e.serviceID, e.identityID, e.key, b.CreatedAt)
		}
	case journalLocalUser:
		exec(`DELETE FROM local_users WHERE service_id = ? AND identity_id = ?`, e.serviceID, e.identityID)
		if b != nil {
			exec(`DELETE FROM local_users WHERE service_id = ? AND name = ?`, e.serviceID, b.Name)
			exec(`INSERT INTO local_users (service_id, identity_id, name, age_days, created_at) VALUES (?, ?, ?, ?, ?)`,
				e.serviceID, e.identityID, b.Name, b.AgeDays, b.CreatedAt)
		}
	case journalTrust:
		exec(`DELETE FROM trust WHERE service_id = ? AND identity_id = ?`, e.serviceID, e.identityID)
		if b != nil {
			exec(`INSERT INTO trust (service_id, identity_id, tokens, updated_at) VALUES (?, ?, ?, ?)`,
				e.serviceID, e.identityID, b.Tokens, b.UpdatedAt)
		}
	case journalSecret:
		exec(`DELETE FROM secrets WHERE service_id = ? AND identity_id = ?`, e.serviceID, e.identityID)
		if b != nil {
			exec(`INSERT INTO secrets (service_id, identity_id, secret, updated_at) VALUES (?, ?, ?, ?)`,
				e.serviceID, e.identityID, b.Secret, b.UpdatedAt)
		}
	case journalIntrusion:
		exec(`DELETE FROM intrusions WHERE ref = ?`, e.key)
		if b != nil {
			exec(`DELETE FROM intrusions WHERE service_id = ? AND serial = ?`, e.serviceID, b.Serial)
			exec(`INSERT INTO intrusions (ref, service_id, identity_id, serial, severity, message, detail, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				e.key, e.serviceID, e.identityID, b.Serial, b.Severity, b.Message, b.Detail, b.CreatedAt)
		}
	default:
		return fmt.Errorf("unknown journal entry kind %q", e.kind)
	}
	return err
}

// issueActor is who an issuance's undo event names: the actor of its first
// audit event.
func issueActor(events []mtlsid.AuditEvent) string {
	if len(events) > 0 {
		return events[0].Actor
	}
	return ""
}
