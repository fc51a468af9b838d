package authority

import (
	"context"

	"github.com/mtlsid/mtlsid"
)

// auditPage is how many entries VerifyAudit reads at a time.
const auditPage = 1000

// VerifyAudit walks the whole audit chain and returns how many entries it
// checked. A broken link is reported as an *mtlsid.AuditChainError naming
// the first bad entry.
func VerifyAudit(ctx context.Context, store mtlsid.Store) (int64, error) {
	var v mtlsid.AuditVerifier
	var after int64
	for {
		page, err := store.AuditLog(ctx, after, auditPage)
		if err != nil {
			return v.Checked(), err
		}
		for _, e := range page {
			if err := v.Next(e); err != nil {
				return v.Checked(), err
			}
			after = e.Seq
		}
		if len(page) < auditPage {
			return v.Checked(), nil
		}
	}
}

// Audit appends events to the audit chain, stamping those without a time.
func (a *Authority) Audit(ctx context.Context, events ...mtlsid.AuditEvent) error {
	now := a.clock()
	for i := range events {
		if events[i].Time.IsZero() {
			events[i].Time = now
		}
	}
	return a.store.AppendAudit(ctx, events...)
}
