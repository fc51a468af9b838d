package mtlsid

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the handlers that turn it into an HTTP
// status, an Identity Plus outcome or a page. Kinds are stable: they appear
// in the self-authority API's "error" field.
type Kind string

// The error kinds.
const (
	KindInvalid        Kind = "invalid"         // malformed or unacceptable input
	KindTooLarge       Kind = "too_large"       // input over a size limit
	KindUnauthorized   Kind = "unauthorized"    // no credential, or an unknown one
	KindForbidden      Kind = "forbidden"       // credential valid but not allowed
	KindNotFound       Kind = "not_found"       // the thing asked for does not exist
	KindConflict       Kind = "conflict"        // the change clashes with stored state
	KindExpired        Kind = "expired"         // a token or certificate past its time
	KindRevoked        Kind = "revoked"         // a revoked certificate
	KindUsed           Kind = "used"            // a single-use token already used
	KindUnavailable    Kind = "unavailable"     // a dependency (the database) is down; retry
	KindRateLimited    Kind = "rate_limited"    // too many attempts; wait and retry
	KindNotImplemented Kind = "not_implemented" // the operation is not built yet
	KindInternal       Kind = "internal"        // anything else; details stay in the log
)

// Error is an error with a Kind and a message that is safe to show to the
// caller. Err, if set, is the cause; it is for logs, never for clients.
type Error struct {
	Kind    Kind
	Message string
	Err     error
}

func (e *Error) Error() string {
	switch {
	case e.Err != nil && e.Message != "":
		return e.Message + ": " + e.Err.Error()
	case e.Err != nil:
		return e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the given kind with a formatted message.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for conditions callers only test for. Each is an *Error, so
// ErrorKind and ErrorMessage work on them and on anything wrapping them.
var (
	ErrNotFound     = &Error{Kind: KindNotFound, Message: "not found"}
	ErrConflict     = &Error{Kind: KindConflict, Message: "already exists"}
	ErrTokenUnknown = &Error{Kind: KindUnauthorized, Message: "unknown token"}
	ErrTokenUsed    = &Error{Kind: KindUsed, Message: "token already used"}
	ErrTokenExpired = &Error{Kind: KindExpired, Message: "token expired"}
	ErrRevoked      = &Error{Kind: KindRevoked, Message: "certificate revoked"}
	ErrExpired      = &Error{Kind: KindExpired, Message: "certificate expired"}
	ErrUnavailable  = &Error{Kind: KindUnavailable, Message: "storage unavailable"}

	ErrLocalUserBound = &Error{Kind: KindConflict, Message: "local user is already bound to this identity"}
	ErrLocalUserTaken = &Error{Kind: KindConflict, Message: "local user is bound to a different identity"}
	ErrIntentExpired  = &Error{Kind: KindExpired, Message: "intent expired"}
	ErrIntentUsed     = &Error{Kind: KindUsed, Message: "intent already used"}
)

// ErrorKind returns the Kind of the first *Error in err's chain, or
// KindInternal if there is none. A nil error has no kind ("").
func ErrorKind(err error) Kind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// ErrorMessage returns the caller-safe message of the first *Error in err's
// chain, or "internal error" if there is none.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "internal error"
}
