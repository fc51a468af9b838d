// Package migrate copies one mtlsid database into another (`mtlsid
// migrate`): every table of a consistent snapshot of the source, in one
// transaction on the target, checked before it commits: each table's row
// count, and the audit chain link by link. It knows the stores only
// through the two small interfaces below, which sqlite.Snapshot and
// postgres.Import satisfy; cmd/mtlsid wires them.
package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/mtlsid/mtlsid"
)

// Source reads a database as of one moment.
type Source interface {
	// Tables names the tables to copy.
	Tables(ctx context.Context) ([]string, error)
	// Table returns a table's column names and its rows.
	Table(ctx context.Context, name string) ([]string, iter.Seq2[[]any, error], error)
}

// Target writes a copy in one transaction, and reads it back before
// committing.
type Target interface {
	// Tables names the target's tables, each after those it references.
	Tables() []string
	// NonEmpty names the tables that hold data.
	NonEmpty(ctx context.Context) ([]string, error)
	// Clear deletes every row of the target.
	Clear(ctx context.Context) error
	// CopyTable writes rows into a table and says how many it wrote.
	CopyTable(ctx context.Context, table string, columns []string, rows iter.Seq2[[]any, error]) (int64, error)
	// Count says how many rows a table holds.
	Count(ctx context.Context, table string) (int64, error)
	// AuditLog and AuditHead read the copied audit chain.
	AuditLog(ctx context.Context, after int64, limit int) ([]mtlsid.AuditEntry, error)
	AuditHead(ctx context.Context) (int64, []byte, error)
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Options change how Copy runs. The zero value is the safe default.
type Options struct {
	// Replace allows a target that holds data: everything in it, its
	// audit log included, is deleted in the copy's transaction. Without
	// it such a target is refused with a *NotEmptyError.
	Replace bool
}

// skipped are tables that describe the running deployment rather than
// what it knows: leases name the node running a periodic job now, and the
// nodes of the target take them anew.
var skipped = map[string]string{
	"leases": "which node runs a periodic job; the target's nodes take them anew",
}

// NotEmptyError refuses a copy into a target that already holds data.
type NotEmptyError struct {
	Tables []string // the tables that hold rows
}

func (e *NotEmptyError) Error() string {
	return "the target database is not empty (rows in " + strings.Join(e.Tables, ", ") + ")"
}

// TableReport is what Copy did with one table.
type TableReport struct {
	Name string
	Rows int64 // rows read from the source, and found in the target
	// Note says why a table was not copied: skipped, or absent from the
	// source (the target's own, left empty). "" for a copied table.
	Note string
}

// Report is what Copy did.
type Report struct {
	Tables       []TableReport
	AuditEntries int64 // entries of the copied chain, each verified
	Cleared      bool  // the target held data and was emptied first
}

// auditPage is how many audit entries the check reads at a time.
const auditPage = 1000

// Copy copies every table of src into dst in dst's dependency order, then
// checks the copy and commits it. Any failure rolls dst back: the target
// is then as it was. A table of the source that the target lacks is an
// error (the target's schema must be as new as the source's); a table of
// the target that the source lacks is left empty.
func Copy(ctx context.Context, src Source, dst Target, opt Options) (rep *Report, err error) {
	defer func() {
		if err != nil {
			err = errors.Join(err, dst.Rollback(context.WithoutCancel(ctx)))
		}
	}()
	srcTables, err := src.Tables(ctx)
	if err != nil {
		return nil, fmt.Errorf("list source tables: %w", err)
	}
	dstTables := dst.Tables()
	var missing []string
	for _, name := range srcTables {
		if _, skip := skipped[name]; !skip && !slices.Contains(dstTables, name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the target has no table %s: is it an older version of mtlsid's schema?", strings.Join(missing, ", "))
	}

	full, err := dst.NonEmpty(ctx)
	if err != nil {
		return nil, err
	}
	rep = &Report{}
	if len(full) > 0 {
		if !opt.Replace {
			return nil, &NotEmptyError{Tables: full}
		}
		if err := dst.Clear(ctx); err != nil {
			return nil, fmt.Errorf("empty the target: %w", err)
		}
		rep.Cleared = true
	}

	for _, name := range dstTables {
		if why, skip := skipped[name]; skip {
			rep.Tables = append(rep.Tables, TableReport{Name: name, Note: "skipped: " + why})
			continue
		}
		if !slices.Contains(srcTables, name) {
			rep.Tables = append(rep.Tables, TableReport{Name: name, Note: "not in the source"})
			continue
		}
		cols, rows, err := src.Table(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		var read int64
		counted := func(yield func([]any, error) bool) {
			for row, err := range rows {
				if err == nil {
					read++
				}
				if !yield(row, err) || err != nil {
					return
				}
			}
		}
		if _, err := dst.CopyTable(ctx, name, cols, counted); err != nil {
			return nil, fmt.Errorf("copy %s: %w", name, err)
		}
		rep.Tables = append(rep.Tables, TableReport{Name: name, Rows: read})
	}

	for _, t := range rep.Tables {
		n, err := dst.Count(ctx, t.Name)
		if err != nil {
			return nil, err
		}
		if n != t.Rows {
			return nil, fmt.Errorf("check %s: the source has %d rows, the target %d", t.Name, t.Rows, n)
		}
	}
	if rep.AuditEntries, err = verifyAudit(ctx, dst); err != nil {
		return nil, err
	}
	if err := dst.Commit(ctx); err != nil {
		return nil, err
	}
	return rep, nil
}

// verifyAudit checks the copied chain as `mtlsid audit verify` does, and
// that its head is the chain's last entry.
func verifyAudit(ctx context.Context, dst Target) (int64, error) {
	var v mtlsid.AuditVerifier
	var last mtlsid.AuditEntry
	for {
		page, err := dst.AuditLog(ctx, last.Seq, auditPage)
		if err != nil {
			return v.Checked(), err
		}
		for _, e := range page {
			if err := v.Next(e); err != nil {
				return v.Checked(), fmt.Errorf("check the copied audit chain (verify the source with `mtlsid audit verify`): %w", err)
			}
			last = e
		}
		if len(page) < auditPage {
			break
		}
	}
	seq, hash, err := dst.AuditHead(ctx)
	if err != nil {
		return v.Checked(), err
	}
	wantHash := last.Hash
	if last.Seq == 0 {
		wantHash = mtlsid.AuditGenesis()
	}
	if seq != last.Seq || !bytes.Equal(hash, wantHash) {
		return v.Checked(), fmt.Errorf("check the copied audit chain: its head names entry %d, the last entry is %d", seq, last.Seq)
	}
	return v.Checked(), nil
}
