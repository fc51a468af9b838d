package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

// Issue persists a batch of issuances in one transaction, as mtlsid.Store
// documents. An item's zero At becomes the transaction's time, and a zero
// Identity.CreatedAt or Certificate.CreatedAt the item's At. An item with
// an empty serial or identity ID, or with text PostgreSQL cannot store,
// is refused with KindInvalid.
//
// However many items there are, Issue takes five round trips: begin, lock
// the chain head, read the state of every item, write every accepted item,
// commit.
func (s *Store) Issue(ctx context.Context, items []mtlsid.Issuance) ([]error, error) {
	errs := make([]error, len(items))
	if len(items) == 0 {
		return errs, nil
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, fail("issue", err)
	}
	defer tx.Rollback(ctx)

	items = slices.Clone(items) // filling in times must not change the caller's items
	for i := range items {
		items[i].At = tx.timeOr(items[i].At)
		errs[i] = checkIssuance(&items[i])
	}
	states, err := readIssueStates(ctx, tx, items, errs)
	if err != nil {
		return nil, fail("issue", err)
	}
	var b pgx.Batch
	var earlier batchChanges
	for i := range items {
		if errs[i] != nil {
			continue
		}
		st := states[i]
		earlier.update(st, &items[i])
		// Refused items write nothing, so no statement fails and the
		// transaction goes on without a savepoint.
		if errs[i] = st.refusal(&items[i]); errs[i] == nil {
			queueIssue(tx, &b, &items[i], st)
			earlier.record(&items[i], st)
		}
	}
	tx.queueHead(&b)
	if err := tx.send(ctx, &b); err != nil {
		return nil, fail("issue", fmt.Errorf("write batch: %w", err))
	}
	if err := tx.commit(ctx); err != nil {
		return nil, fail("issue", err)
	}
	return errs, nil
}

// queueIssue queues the writes of an accepted item.
func queueIssue(tx *tx, b *pgx.Batch, it *mtlsid.Issuance, st *issueState) {
	c := &it.Certificate
	if st.createIdentity {
		id := *it.Identity
		if id.CreatedAt.IsZero() {
			id.CreatedAt = it.At
		}
		b.Queue(`INSERT INTO identities (id, kind, name, created_at) VALUES ($1, $2, $3, $4)`,
			id.ID, string(id.Kind), id.Name, norm(id.CreatedAt))
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = it.At
	}
	b.Queue(`INSERT INTO certificates (`+certColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		c.Serial, c.IdentityID, string(c.Profile), c.Name, c.DeviceType, norm(c.NotBefore), norm(c.NotAfter),
		nonNil(c.DER), c.RenewedFrom, c.Development, norm(c.CreatedAt), optTime(c.RevokedAt), c.RevocationReason)
	if len(it.TokenHash) > 0 {
		// The condition repeats the check; a miss means the head lock failed
		// to keep another writer out, and the batch must not commit.
		serial := c.Serial
		b.Queue(`UPDATE tokens SET used_at = $1, used_by = $2
			WHERE hash = $3 AND used_at IS NULL AND expires_at > $1`, it.At, serial, it.TokenHash).
			Exec(func(ct pgconn.CommandTag) error {
				if ct.RowsAffected() != 1 {
					return fmt.Errorf("use token for %s: token changed under the audit head lock", serial)
				}
				return nil
			})
	}
	events := it.Audit
	if it.RevokeSerial != "" {
		queueRevoke(b, it.RevokeSerial, it.At, it.RevokeReason)
		tx.emit(mtlsid.Event{Kind: mtlsid.EventRevoked, Serial: it.RevokeSerial})
		if st.revokeDev != nil && *st.revokeDev {
			if ev := queueRetireJournal(b, it.RevokeSerial, st.journal, c, it.At, issueActor(it.Audit)); ev != nil {
				events = append(slices.Clip(events), *ev)
				tx.emitUndone(st.journal)
			}
		}
	}
	queueAudit(tx, b, events)
}

// checkIssuance refuses items that no stored state could make acceptable.
func checkIssuance(it *mtlsid.Issuance) error {
	c := &it.Certificate
	switch {
	case c.Serial == "":
		return mtlsid.Errorf(mtlsid.KindInvalid, "certificate has no serial")
	case c.IdentityID == "":
		return mtlsid.Errorf(mtlsid.KindInvalid, "certificate %s has no identity", c.Serial)
	case it.Identity != nil && it.Identity.ID == "":
		return mtlsid.Errorf(mtlsid.KindInvalid, "identity to create has no ID")
	case !storeinput.Text(c.Serial, c.IdentityID, string(c.Profile), c.Name, c.DeviceType, c.RenewedFrom, it.RevokeSerial),
		it.Identity != nil && !storeinput.Text(it.Identity.ID, string(it.Identity.Kind), it.Identity.Name),
		!storeinput.Events(it.Audit):
		return storeinput.ErrText
	}
	return nil
}

// issueState is what an item's checks need from the database.
type issueState struct {
	tokenUsed      *bool // nil: no such token
	tokenExpires   *time.Time
	identityFound  bool // it.Identity's
	certIDFound    bool // the certificate's identity's
	serialFound    bool
	revokeRevoked  *bool // nil: no such certificate
	revokeDev      *bool // whether it is a development certificate
	journal        []journalEntry
	createIdentity bool
}

// stateQuery reads everything that can refuse an item.
const stateQuery = `SELECT
	(SELECT used_at IS NOT NULL FROM tokens WHERE hash = $1),
	(SELECT expires_at FROM tokens WHERE hash = $1),
	EXISTS (SELECT 1 FROM identities WHERE id = $2),
	EXISTS (SELECT 1 FROM identities WHERE id = $3),
	EXISTS (SELECT 1 FROM certificates WHERE serial = $4),
	(SELECT revoked_at IS NOT NULL FROM certificates WHERE serial = $5),
	(SELECT development FROM certificates WHERE serial = $5)`

// readIssueStates reads, in one round trip, the stored state of each item
// not already refused (errs[i] != nil). The state is that before the batch:
// batchChanges adds what earlier items change.
func readIssueStates(ctx context.Context, tx *tx, items []mtlsid.Issuance, errs []error) ([]*issueState, error) {
	states := make([]*issueState, len(items))
	var b pgx.Batch
	for i := range items {
		if errs[i] != nil {
			continue
		}
		it := &items[i]
		var itemIdentity string
		if it.Identity != nil {
			itemIdentity = it.Identity.ID
		}
		st := new(issueState)
		states[i] = st
		b.Queue(stateQuery, nonNil(it.TokenHash), itemIdentity, it.Certificate.IdentityID,
			it.Certificate.Serial, it.RevokeSerial).
			QueryRow(func(row pgx.Row) error {
				return row.Scan(&st.tokenUsed, &st.tokenExpires, &st.identityFound, &st.certIDFound,
					&st.serialFound, &st.revokeRevoked, &st.revokeDev)
			})
		if it.RevokeSerial != "" {
			// The journal, in case the certificate is a development one.
			b.Queue(`SELECT kind, service_id, identity_id, key, before::text
				FROM dev_journal WHERE serial = $1 ORDER BY seq DESC`, it.RevokeSerial).
				Query(func(rows pgx.Rows) error {
					var err error
					st.journal, err = scanJournal(rows)
					return err
				})
		}
	}
	if err := tx.send(ctx, &b); err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	return states, nil
}

// batchChanges is what the accepted items of a batch have changed so far.
type batchChanges struct {
	usedTokens map[string]bool
	identities map[string]bool
	serials    map[string]bool           // inserted
	revoked    map[string]bool           // revoked, or inserted already revoked
	dev        map[string]bool           // inserted development certificates
	journals   map[string][]journalEntry // passed to an inserted certificate
}

// update brings st, read before the batch, up to date with the changes of
// the items before it.
func (bc *batchChanges) update(st *issueState, it *mtlsid.Issuance) {
	if bc.usedTokens[string(it.TokenHash)] {
		st.tokenUsed = ptr(true)
	}
	if it.Identity != nil && bc.identities[it.Identity.ID] {
		st.identityFound = true
	}
	if bc.identities[it.Certificate.IdentityID] {
		st.certIDFound = true
	}
	if bc.serials[it.Certificate.Serial] {
		st.serialFound = true
	}
	if bc.serials[it.RevokeSerial] {
		st.revokeRevoked = ptr(false)
		st.revokeDev = ptr(bc.dev[it.RevokeSerial])
		st.journal = bc.journals[it.RevokeSerial]
	}
	if bc.revoked[it.RevokeSerial] {
		st.revokeRevoked = ptr(true)
	}
	st.createIdentity = it.Identity != nil && !st.identityFound
}

// record notes the changes of an accepted item.
func (bc *batchChanges) record(it *mtlsid.Issuance, st *issueState) {
	if bc.serials == nil {
		bc.usedTokens, bc.identities = map[string]bool{}, map[string]bool{}
		bc.serials, bc.revoked = map[string]bool{}, map[string]bool{}
		bc.dev, bc.journals = map[string]bool{}, map[string][]journalEntry{}
	}
	if len(it.TokenHash) > 0 {
		bc.usedTokens[string(it.TokenHash)] = true
	}
	if st.createIdentity {
		bc.identities[it.Identity.ID] = true
	}
	bc.serials[it.Certificate.Serial] = true
	bc.dev[it.Certificate.Serial] = it.Certificate.Development
	if st.revokeDev != nil && *st.revokeDev && it.Certificate.Development && it.Certificate.RenewedFrom == it.RevokeSerial {
		bc.journals[it.Certificate.Serial] = st.journal // see queueRetireJournal
	}
	if it.Certificate.Revoked() {
		bc.revoked[it.Certificate.Serial] = true
	}
	if it.RevokeSerial != "" {
		bc.revoked[it.RevokeSerial] = true
	}
}

func ptr[T any](v T) *T { return &v }

// refusal returns why the item cannot be applied, checking in the order
// mtlsid.Store documents, or nil.
func (st *issueState) refusal(it *mtlsid.Issuance) error {
	c := &it.Certificate
	if len(it.TokenHash) > 0 {
		switch {
		case st.tokenUsed == nil:
			return mtlsid.ErrTokenUnknown
		case *st.tokenUsed:
			return mtlsid.ErrTokenUsed
		case !it.At.Before(*st.tokenExpires):
			return mtlsid.ErrTokenExpired
		}
	}
	if !st.certIDFound && !(st.createIdentity && it.Identity.ID == c.IdentityID) {
		return fmt.Errorf("identity %q of certificate %s: %w", c.IdentityID, c.Serial, mtlsid.ErrNotFound)
	}
	if st.serialFound {
		return fmt.Errorf("certificate %s: %w", c.Serial, mtlsid.ErrConflict)
	}
	if it.RevokeSerial != "" {
		switch {
		case st.revokeRevoked == nil:
			return fmt.Errorf("certificate %s to revoke: %w", it.RevokeSerial, mtlsid.ErrNotFound)
		case *st.revokeRevoked:
			return fmt.Errorf("certificate %s: %w", it.RevokeSerial, mtlsid.ErrRevoked)
		}
	}
	return nil
}
