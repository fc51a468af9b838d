package sqlite

import (
	"context"
	"fmt"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

// AppendAudit adds events to the audit chain, in order, in one transaction.
// An event with a zero Time gets the transaction's time.
func (s *Store) AppendAudit(ctx context.Context, events ...mtlsid.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	if !storeinput.Events(events) {
		return storeinput.ErrText
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fail("append audit", err)
	}
	defer tx.Rollback()
	if err := appendAudit(ctx, tx, events); err != nil {
		return fail("append audit", err)
	}
	return fail("append audit", tx.commit(ctx))
}

// AuditLog returns up to limit entries with Seq > after, in order. A limit
// below 1 is KindInvalid.
func (s *Store) AuditLog(ctx context.Context, after int64, limit int) ([]mtlsid.AuditEntry, error) {
	if limit < 1 {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "audit log limit %d is below 1", limit)
	}
	rows, err := s.read.QueryContext(ctx, `
		SELECT seq, time, type, actor, subject, detail, prev_hash, hash
		FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fail("audit log", err)
	}
	defer rows.Close()
	entries := []mtlsid.AuditEntry{}
	for rows.Next() {
		var e mtlsid.AuditEntry
		var t int64
		if err := rows.Scan(&e.Seq, &t, &e.Type, &e.Actor, &e.Subject, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return nil, fail("audit log", err)
		}
		e.Time = fromMicros(t)
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fail("audit log", err)
	}
	return entries, nil
}

// appendAudit chains events onto the head of the audit log. The head row is
// written once, at commit.
func appendAudit(ctx context.Context, tx *tx, events []mtlsid.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	if !tx.headLoaded {
		if err := tx.queryRow(ctx, selectAuditHead).Scan(&tx.head.Seq, &tx.head.Hash); err != nil {
			return fmt.Errorf("read audit head: %w", err)
		}
		tx.headLoaded = true
	}
	for _, ev := range events {
		// The time is cut to what the column keeps before it is hashed, so
		// the stored entry hashes the same when it is read back.
		ev.Time = tx.timeOr(ev.Time)
		var prev *mtlsid.AuditEntry
		if tx.head.Seq > 0 {
			prev = &tx.head
		}
		e := mtlsid.AuditEntry{Seq: tx.head.Seq + 1, AuditEvent: ev}.Chain(prev)
		if _, err := tx.exec(ctx, insertAuditEntry,
			e.Seq, micros(e.Time), e.Type, e.Actor, e.Subject, e.Detail, e.PrevHash, e.Hash); err != nil {
			return fmt.Errorf("append audit entry %d: %w", e.Seq, err)
		}
		tx.head = mtlsid.AuditEntry{Seq: e.Seq, Hash: e.Hash}
		tx.headDirty = true
	}
	return nil
}
