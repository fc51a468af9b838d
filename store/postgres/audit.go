package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
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
	defer tx.Rollback(ctx)
	var b pgx.Batch
	queueAudit(tx, &b, events)
	tx.queueHead(&b)
	if err := tx.send(ctx, &b); err != nil {
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
	rows, err := s.pool.Query(ctx, `
		SELECT seq, time, type, actor, subject, detail, prev_hash, hash
		FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fail("audit log", err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mtlsid.AuditEntry, error) {
		var e mtlsid.AuditEntry
		var t time.Time
		err := row.Scan(&e.Seq, &t, &e.Type, &e.Actor, &e.Subject, &e.Detail, &e.PrevHash, &e.Hash)
		e.Time = t.UTC()
		return e, err
	})
	if err != nil {
		return nil, fail("audit log", err)
	}
	if entries == nil {
		entries = []mtlsid.AuditEntry{}
	}
	return entries, nil
}

// queueAudit chains events onto the head of the audit log and queues their
// inserts on b. The head row is written once, at commit.
func queueAudit(tx *tx, b *pgx.Batch, events []mtlsid.AuditEvent) {
	for _, ev := range events {
		// The time is cut to what the column keeps before it is hashed, so
		// the stored entry hashes the same when it is read back.
		ev.Time = tx.timeOr(ev.Time)
		var prev *mtlsid.AuditEntry
		if tx.head.Seq > 0 {
			prev = &tx.head
		}
		e := mtlsid.AuditEntry{Seq: tx.head.Seq + 1, AuditEvent: ev}.Chain(prev)
		b.Queue(`INSERT INTO audit_log (seq, time, type, actor, subject, detail, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			e.Seq, e.Time, e.Type, e.Actor, e.Subject, e.Detail, e.PrevHash, e.Hash)
		tx.head = mtlsid.AuditEntry{Seq: e.Seq, Hash: e.Hash}
		tx.headDirty = true
	}
}
