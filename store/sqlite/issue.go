package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

// Issue persists a batch of issuances in one transaction, as mtlsid.Store
// documents. An item's zero At becomes the transaction's time, and a zero
// Identity.CreatedAt or Certificate.CreatedAt the item's At. An item with
// an empty serial or identity ID, or with text PostgreSQL could not store,
// is refused with KindInvalid.
func (s *Store) Issue(ctx context.Context, items []mtlsid.Issuance) ([]error, error) {
	errs := make([]error, len(items))
	if len(items) == 0 {
		return errs, nil
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, fail("issue", err)
	}
	defer tx.Rollback()
	for i := range items {
		if errs[i], err = issue(ctx, tx, items[i]); err != nil {
			return nil, fail("issue", err)
		}
	}
	if err := tx.commit(ctx); err != nil {
		return nil, fail("issue", err)
	}
	return errs, nil
}

// issue applies one item. It makes every check that can refuse the item
// before its first write, so a refused item (refused != nil) leaves nothing
// behind and needs no savepoint. err is a database failure, which dooms the
// whole batch.
func issue(ctx context.Context, tx *tx, it mtlsid.Issuance) (refused, err error) {
	it.At = tx.timeOr(it.At)
	c := &it.Certificate
	if refused := checkIssuance(&it); refused != nil {
		return refused, nil
	}
	st, err := readIssueState(ctx, tx, &it)
	if err != nil {
		return nil, err
	}
	if refused := st.refusal(&it); refused != nil {
		return refused, nil
	}

	if st.createIdentity {
		id := *it.Identity
		if id.CreatedAt.IsZero() {
			id.CreatedAt = it.At
		}
		if _, err := tx.exec(ctx, insertIdentity, id.ID, string(id.Kind), id.Name, micros(id.CreatedAt)); err != nil {
			return nil, fmt.Errorf("insert identity %s: %w", id.ID, err)
		}
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = it.At
	}
	if _, err := tx.exec(ctx, insertCertificate,
		c.Serial, c.IdentityID, string(c.Profile), c.Name, c.DeviceType, micros(c.NotBefore), micros(c.NotAfter),
		nonNil(c.DER), c.RenewedFrom, c.Development, micros(c.CreatedAt), optMicros(c.RevokedAt), c.RevocationReason); err != nil {
		return nil, fmt.Errorf("insert certificate %s: %w", c.Serial, err)
	}
	if len(it.TokenHash) > 0 {
		// The condition repeats the check; a miss means the write lock failed
		// to keep another writer out, and the batch must not commit.
		res, err := tx.exec(ctx, updateTokenUsed, micros(it.At), c.Serial, it.TokenHash, micros(it.At))
		if err != nil {
			return nil, fmt.Errorf("use token: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if n != 1 {
			return nil, fmt.Errorf("use token: token changed under the write lock")
		}
	}
	events := it.Audit
	if it.RevokeSerial != "" {
		if err := revoke(ctx, tx, it.RevokeSerial, it.At, it.RevokeReason); err != nil {
			return nil, err
		}
		tx.emit(mtlsid.Event{Kind: mtlsid.EventRevoked, Serial: it.RevokeSerial})
		if st.revokeDev {
			ev, err := retireJournal(ctx, tx, it.RevokeSerial, c, it.At, issueActor(it.Audit))
			if err != nil {
				return nil, err
			}
			if ev != nil {
				events = append(slices.Clip(events), *ev)
			}
		}
	}
	return nil, appendAudit(ctx, tx, events)
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
	tokenFound     bool
	tokenUsed      bool
	tokenExpires   int64
	identityFound  bool // it.Identity's
	certIDFound    bool // the certificate's identity's
	serialFound    bool
	revokeFound    bool
	revokeRevoked  bool
	revokeDev      bool // the certificate to revoke is a development one
	createIdentity bool
}

// readIssueState reads the item's state in one query, selectIssueState.
func readIssueState(ctx context.Context, tx *tx, it *mtlsid.Issuance) (*issueState, error) {
	var itemIdentity string
	if it.Identity != nil {
		itemIdentity = it.Identity.ID
	}
	var st issueState
	var tokenUsed, tokenExpires, revokeRevoked, revokeDev sql.NullInt64
	err := tx.queryRow(ctx, selectIssueState,
		nonNil(it.TokenHash), itemIdentity, it.Certificate.IdentityID, it.Certificate.Serial, it.RevokeSerial).
		Scan(&tokenUsed, &tokenExpires, &st.identityFound, &st.certIDFound, &st.serialFound, &revokeRevoked, &revokeDev)
	if err != nil {
		return nil, fmt.Errorf("read state of certificate %s: %w", it.Certificate.Serial, err)
	}
	st.tokenFound, st.tokenUsed, st.tokenExpires = tokenUsed.Valid, tokenUsed.Int64 != 0, tokenExpires.Int64
	st.revokeFound, st.revokeRevoked = revokeRevoked.Valid, revokeRevoked.Int64 != 0
	st.revokeDev = revokeDev.Int64 != 0
	st.createIdentity = it.Identity != nil && !st.identityFound
	return &st, nil
}

// refusal returns why the item cannot be applied, checking in the order
// mtlsid.Store documents, or nil.
func (st *issueState) refusal(it *mtlsid.Issuance) error {
	c := &it.Certificate
	if len(it.TokenHash) > 0 {
		switch {
		case !st.tokenFound:
			return mtlsid.ErrTokenUnknown
		case st.tokenUsed:
			return mtlsid.ErrTokenUsed
		case st.tokenExpires <= micros(it.At):
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
		case !st.revokeFound:
			return fmt.Errorf("certificate %s to revoke: %w", it.RevokeSerial, mtlsid.ErrNotFound)
		case st.revokeRevoked:
			return fmt.Errorf("certificate %s: %w", it.RevokeSerial, mtlsid.ErrRevoked)
		}
	}
	return nil
}
