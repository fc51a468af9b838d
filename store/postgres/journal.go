package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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
// Times are Unix microseconds, as the SQLite store keeps them.
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

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(n int64) time.Time { return time.UnixMicro(n).UTC() }

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
		var b pgx.Batch
		for _, e := range es {
			tx.emit(e.event())
			if c.Development {
				if err := queueJournal(&b, c.By, at, e); err != nil {
					return err
				}
			}
		}
		queueAudit(tx, &b, []mtlsid.AuditEvent{c.Audit})
		tx.queueHead(&b)
		return tx.send(ctx, &b)
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

// emitUndone queues the events of undoing entries.
func (tx *tx) emitUndone(entries []journalEntry) {
	for i := range entries {
		tx.emit(entries[i].event())
	}
}

// checkJournaling refuses to journal under a certificate that is unknown,
// revoked (its journal was undone already: a change journaled now would
// never be) or not a development certificate.
func checkJournaling(ctx context.Context, tx *tx, serial string) error {
	var revoked *time.Time
	var dev bool
	err := tx.QueryRow(ctx, `SELECT revoked_at, development FROM certificates WHERE serial = $1`, serial).Scan(&revoked, &dev)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("certificate %s making the change: %w", serial, mtlsid.ErrNotFound)
	case err != nil:
		return fmt.Errorf("read certificate %s: %w", serial, err)
	case revoked != nil:
		return fmt.Errorf("certificate %s making the change: %w", serial, mtlsid.ErrRevoked)
	case !dev:
		return mtlsid.Errorf(mtlsid.KindInvalid, "certificate %s is not a development certificate", serial)
	}
	return nil
}

// queueJournal queues the append of e to serial's journal, after its
// newest entry.
func queueJournal(b *pgx.Batch, serial string, at time.Time, e *journalEntry) error {
	var before []byte // NULL
	if e.before != nil {
		var err error
		if before, err = json.Marshal(e.before); err != nil {
			return err
		}
	}
	b.Queue(`INSERT INTO dev_journal (serial, seq, at, kind, service_id, identity_id, key, before)
		SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4, $5, $6, $7::jsonb FROM dev_journal WHERE serial = $1`,
		serial, at, e.kind, e.serviceID, e.identityID, e.key, nullableText(before))
	return nil
}

// nullableText passes JSON as text, and nil as NULL.
func nullableText(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// readJournal returns serial's journal, newest first.
func readJournal(ctx context.Context, tx *tx, serial string) ([]journalEntry, error) {
	rows, err := tx.Query(ctx, `SELECT kind, service_id, identity_id, key, before::text
		FROM dev_journal WHERE serial = $1 ORDER BY seq DESC`, serial)
	if err != nil {
		return nil, fmt.Errorf("read journal of %s: %w", serial, err)
	}
	entries, err := scanJournal(rows)
	if err != nil {
		return nil, fmt.Errorf("read journal of %s: %w", serial, err)
	}
	return entries, nil
}

// scanJournal reads the rows of a query of kind, service_id, identity_id,
// key and before (as text), refusing kinds queueUndo does not know.
func scanJournal(rows pgx.Rows) ([]journalEntry, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (journalEntry, error) {
		var e journalEntry
		var before *string
		if err := row.Scan(&e.kind, &e.serviceID, &e.identityID, &e.key, &before); err != nil {
			return e, err
		}
		switch e.kind {
		case journalRole, journalLocalUser, journalTrust, journalSecret, journalIntrusion:
		default:
			return e, fmt.Errorf("unknown journal entry kind %q", e.kind)
		}
		if before != nil {
			e.before = new(image)
			if err := json.Unmarshal([]byte(*before), e.before); err != nil {
				return e, err
			}
		}
		return e, nil
	})
}

// queueRetireJournal queues what becomes of the journal (entries, newest
// first) of a development certificate being revoked at at. If successor
// is a development certificate that renews it, the journal passes to the
// successor and nil is returned. Otherwise every entry is undone, newest
// first, the journal is deleted, and the returned event, by actor, says
// how many changes were undone.
func queueRetireJournal(b *pgx.Batch, serial string, entries []journalEntry, successor *mtlsid.Certificate, at time.Time, actor string) *mtlsid.AuditEvent {
	if successor != nil && successor.Development && successor.RenewedFrom == serial {
		b.Queue(`UPDATE dev_journal SET serial = $1 WHERE serial = $2`, successor.Serial, serial)
		return nil
	}
	for i := range entries {
		queueUndo(b, &entries[i])
	}
	b.Queue(`DELETE FROM dev_journal WHERE serial = $1`, serial)
	if actor == "" {
		actor = "system"
	}
	return &mtlsid.AuditEvent{Time: at, Type: mtlsid.AuditJournalUndone, Actor: actor, Subject: serial,
		Detail: fmt.Sprintf("undone=%d", len(entries))}
}

// queueUndo queues what puts the row e names back as it was before the
// change: it deletes the row as it is now, and inserts the image,
// replacing any row that took the image's other unique keys (a local
// user's name, an intrusion's service and serial) since.
func queueUndo(b *pgx.Batch, e *journalEntry) {
	im := e.before
	switch e.kind {
	case journalRole:
		b.Queue(`DELETE FROM role_grants WHERE service_id = $1 AND identity_id = $2 AND role = $3`, e.serviceID, e.identityID, e.key)
		if im != nil {
			b.Queue(`INSERT INTO role_grants (service_id, identity_id, role, created_at) VALUES ($1, $2, $3, $4)`,
				e.serviceID, e.identityID, e.key, fromMicros(im.CreatedAt))
		}
	case journalLocalUser:
		b.Queue(`DELETE FROM local_users WHERE service_id = $1 AND identity_id = $2`, e.serviceID, e.identityID)
		if im != nil {
			b.Queue(`DELETE FROM local_users WHERE service_id = $1 AND name = $2`, e.serviceID, im.Name)
			b.Queue(`INSERT INTO local_users (service_id, identity_id, name, age_days, created_at) VALUES ($1, $2, $3, $4, $5)`,
				e.serviceID, e.identityID, im.Name, im.AgeDays, fromMicros(im.CreatedAt))
		}
	case journalTrust:
		b.Queue(`DELETE FROM trust WHERE service_id = $1 AND identity_id = $2`, e.serviceID, e.identityID)
		if im != nil {
			b.Queue(`INSERT INTO trust (service_id, identity_id, tokens, updated_at) VALUES ($1, $2, $3, $4)`,
				e.serviceID, e.identityID, im.Tokens, fromMicros(im.UpdatedAt))
		}
	case journalSecret:
		b.Queue(`DELETE FROM secrets WHERE service_id = $1 AND identity_id = $2`, e.serviceID, e.identityID)
		if im != nil {
			b.Queue(`INSERT INTO secrets (service_id, identity_id, secret, updated_at) VALUES ($1, $2, $3, $4)`,
				e.serviceID, e.identityID, im.Secret, fromMicros(im.UpdatedAt))
		}
	case journalIntrusion:
		b.Queue(`DELETE FROM intrusions WHERE ref = $1`, e.key)
		if im != nil {
			b.Queue(`DELETE FROM intrusions WHERE service_id = $1 AND serial = $2`, e.serviceID, im.Serial)
			b.Queue(`INSERT INTO intrusions (ref, service_id, identity_id, serial, severity, message, detail, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				e.key, e.serviceID, e.identityID, im.Serial, im.Severity, im.Message, im.Detail, fromMicros(im.CreatedAt))
		}
	}
	// readJournal refuses entries of any other kind.
}

// issueActor is who an issuance's undo event names: the actor of its first
// audit event.
func issueActor(events []mtlsid.AuditEvent) string {
	if len(events) > 0 {
		return events[0].Actor
	}
	return ""
}
