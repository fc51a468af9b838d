// Package storeinput holds the input rules both stores apply before they
// write, so that SQLite and PostgreSQL accept and refuse exactly the same
// things. Only store/sqlite and store/postgres import it.
package storeinput

import (
	"strings"
	"unicode/utf8"

	"github.com/mtlsid/mtlsid"
)

// ErrText refuses text that PostgreSQL cannot store (it would abort the
// whole transaction), in both stores alike.
var ErrText = mtlsid.Errorf(mtlsid.KindInvalid, "text must be valid UTF-8 without NUL characters")

// Text reports whether every string is valid UTF-8 without NUL.
func Text(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}

// Events reports whether every audit event's text is storable.
func Events(events []mtlsid.AuditEvent) bool {
	for _, e := range events {
		if !Text(e.Type, e.Actor, e.Subject, e.Detail) {
			return false
		}
	}
	return true
}

// Required refuses, with KindInvalid, the first of the (name, value) pairs
// whose value is empty.
func Required(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return mtlsid.Errorf(mtlsid.KindInvalid, "%s is required", pairs[i])
		}
	}
	return nil
}

// MaxTrust is the most tokens of trust a service may give an identity.
const MaxTrust = 10000

// AddTokens returns have+add kept within 0..MaxTrust, without overflowing.
func AddTokens(have, add int) int {
	add = min(max(add, -MaxTrust), MaxTrust)
	return min(max(have+add, 0), MaxTrust)
}
