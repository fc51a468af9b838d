package sdk

import (
	"errors"
	"strings"

	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
)

// OutcomeError is an Identity API answer whose outcome is not OK: a
// problem with the subject (PB) or an error of the call (ER). Test it with
// errors.Is against the class sentinels (ErrProblem, ErrAPI) or one
// outcome's sentinel (ErrNeedsValidation, ...): an OutcomeError matches a
// target OutcomeError whose Outcome is its class ("PB", "ER") or starts
// with the same code ("PB 0003").
type OutcomeError struct {
	// Outcome is the outcome string as the server sent it, such as
	// "PB 0003 Identity Plus anonymous certificate needs validation".
	Outcome string
	// Message is the server's explanation, if any.
	Message string
	// Status is the HTTP status of the answer (200 for most outcomes).
	Status int
}

func (e *OutcomeError) Error() string {
	if e.Message != "" {
		return "mtlsid: " + e.Outcome + ": " + e.Message
	}
	return "mtlsid: " + e.Outcome
}

// Code returns the outcome's class and number, such as "PB 0003".
func (e *OutcomeError) Code() string { return outcomeCode(e.Outcome) }

// Class returns "OK", "PB" or "ER".
func (e *OutcomeError) Class() string {
	if len(e.Outcome) < 2 {
		return ""
	}
	return e.Outcome[:2]
}

// Is reports whether target is an *OutcomeError naming e's class or code.
func (e *OutcomeError) Is(target error) bool {
	t, ok := target.(*OutcomeError)
	if !ok {
		return false
	}
	if len(t.Outcome) == 2 {
		return e.Class() == t.Outcome
	}
	return e.Code() == t.Code()
}

func outcomeCode(o string) string {
	if len(o) >= 7 {
		return o[:7]
	}
	return o
}

// isOK reports whether an outcome is of the OK class.
func isOK(outcome string) bool { return strings.HasPrefix(outcome, "OK ") }

// Class sentinels.
var (
	// ErrProblem matches every PB outcome: the subject's certificate is
	// not (yet) usable by this service.
	ErrProblem = &OutcomeError{Outcome: "PB"}
	// ErrAPI matches every ER outcome: the call itself failed.
	ErrAPI = &OutcomeError{Outcome: "ER"}
)

// Outcome sentinels, for the outcomes callers act on.
var (
	ErrNoCertificate        = &OutcomeError{Outcome: idwire.PB0000}
	ErrCertificateExpired   = &OutcomeError{Outcome: idwire.PB0002}
	ErrNeedsValidation      = &OutcomeError{Outcome: idwire.PB0003}
	ErrCertificateRevoked   = &OutcomeError{Outcome: idwire.PB0004}
	ErrIntruder             = &OutcomeError{Outcome: idwire.PB0005}
	ErrUnknownCertificate   = &OutcomeError{Outcome: idwire.PB0006}
	ErrAuthorizationExpired = &OutcomeError{Outcome: idwire.PB0008}

	ErrRequestDenied     = &OutcomeError{Outcome: idwire.ER0009}
	ErrMissingReference  = &OutcomeError{Outcome: idwire.ER0010}
	ErrNoAPICertificate  = &OutcomeError{Outcome: idwire.ER1100}
	ErrAPICertUnknown    = &OutcomeError{Outcome: idwire.ER1101}
	ErrAPICertExpired    = &OutcomeError{Outcome: idwire.ER1102}
	ErrAPICertRevoked    = &OutcomeError{Outcome: idwire.ER1103}
	ErrServerUnavailable = &OutcomeError{Outcome: idwire.ER1106}
)

// ErrClosed is returned by calls on a closed Middleware or Renewer.
var ErrClosed = errors.New("sdk: closed")
