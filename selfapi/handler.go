package selfapi

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// Authority is what the handler needs of the authority.
type Authority interface {
	Enroll(ctx context.Context, req authority.EnrollRequest) (*authority.Issued, error)
	Caller(ctx context.Context, peer *x509.Certificate) (*mtlsid.Certificate, error)
	Renew(ctx context.Context, caller *mtlsid.Certificate, req authority.RenewRequest) (*authority.Renewal, error)
	Devices(ctx context.Context, caller *mtlsid.Certificate) ([]mtlsid.Certificate, error)
	Revoke(ctx context.Context, caller *mtlsid.Certificate, serial string, reason int) error
}

// Config configures a Handler.
type Config struct {
	Authority Authority
	// Logger receives request logs. Nil discards them.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// FailedEnrollLimit bounds failed enrollments (bad tokens) per client
	// address per minute, against token guessing. Zero means 30; negative
	// disables the limit.
	FailedEnrollLimit int
}

// Handler serves the self-authority API. It is safe for concurrent use.
type Handler struct {
	auth    Authority
	log     *slog.Logger
	now     func() time.Time
	limiter *failLimiter
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Authority == nil {
		return nil, errors.New("selfapi: no authority")
	}
	h := &Handler{auth: cfg.Authority, log: cfg.Logger, now: cfg.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if cfg.FailedEnrollLimit >= 0 {
		n := cfg.FailedEnrollLimit
		if n == 0 {
			n = 30
		}
		h.limiter = newFailLimiter(n, h.now)
	}
	return h, nil
}

type opFunc func(ctx context.Context, r *http.Request, args *wire.Args) (any, error)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, wire.Response{Error: "use POST with a JSON body", Kind: string(mtlsid.KindInvalid)})
		return
	}
	req, err := decodeRequest(w, r)
	if err != nil {
		h.fail(w, r, "", err)
		return
	}
	var op opFunc
	switch req.Operation {
	case wire.OpEnroll:
		op = h.enroll
	case wire.OpRenewCertificate:
		op = h.renew
	case wire.OpGetActiveIdentites:
		op = h.devices
	case wire.OpRevoke:
		op = h.revoke
	case "":
		h.fail(w, r, "", mtlsid.Errorf(mtlsid.KindInvalid, "no operation given"))
		return
	default:
		h.fail(w, r, req.Operation, mtlsid.Errorf(mtlsid.KindNotImplemented, "operation %q is not implemented", req.Operation))
		return
	}
	args := new(wire.Args)
	if len(req.Args) > 0 && !bytes.Equal(req.Args, []byte("null")) {
		if err := json.Unmarshal(req.Args, args); err != nil {
			h.fail(w, r, req.Operation, jsonError("args", err))
			return
		}
	}
	res, err := op(r.Context(), r, args)
	if err != nil {
		h.fail(w, r, req.Operation, err)
		return
	}
	h.log.Info("self-authority call", "operation", req.Operation, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, wire.Response{Result: res})
}

func decodeRequest(w http.ResponseWriter, r *http.Request) (*wire.Request, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, wire.MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, mtlsid.Errorf(mtlsid.KindTooLarge, "request body is larger than %d bytes", wire.MaxBody)
	}
	if err != nil {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "reading request body: %v", err)
	}
	var req wire.Request
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, jsonError("request", err)
	}
	return &req, nil
}

// jsonError turns a decoding error into a message that says what was wrong
// without echoing the input.
func jsonError(what string, err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		if field == "" {
			return mtlsid.Errorf(mtlsid.KindInvalid, "%s must be a JSON object", what)
		}
		return mtlsid.Errorf(mtlsid.KindInvalid, "%s: field %q must be a %s, not a %s", what, field, jsonType(typeErr.Type.Kind().String()), typeErr.Value)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return mtlsid.Errorf(mtlsid.KindInvalid, "%s is not valid JSON (at byte %d)", what, syntaxErr.Offset)
	}
	return mtlsid.Errorf(mtlsid.KindInvalid, "%s is not valid JSON", what)
}

func jsonType(kind string) string {
	switch kind {
	case "bool":
		return "boolean"
	case "int", "int64", "float64":
		return "number"
	}
	return kind
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	kind := mtlsid.ErrorKind(err)
	status := statusFor(kind)
	if status >= 500 {
		h.log.Error("self-authority call failed", "operation", op, "remote", r.RemoteAddr, "err", err)
	} else {
		h.log.Info("self-authority call refused", "operation", op, "remote", r.RemoteAddr, "kind", kind, "err", err)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, status, wire.Response{Error: mtlsid.ErrorMessage(err), Kind: string(kind)})
}

func statusFor(k mtlsid.Kind) int {
	switch k {
	case mtlsid.KindInvalid:
		return http.StatusBadRequest
	case mtlsid.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case mtlsid.KindUnauthorized, mtlsid.KindExpired, mtlsid.KindUsed:
		return http.StatusUnauthorized
	case mtlsid.KindForbidden:
		return http.StatusForbidden
	case mtlsid.KindNotFound:
		return http.StatusNotFound
	case mtlsid.KindConflict, mtlsid.KindRevoked:
		return http.StatusConflict
	case mtlsid.KindUnavailable:
		return http.StatusServiceUnavailable
	case mtlsid.KindNotImplemented:
		return http.StatusNotImplemented
	case mtlsid.KindRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (h *Handler) enroll(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	ip := clientIP(r)
	if h.limiter != nil && !h.limiter.ok(ip) {
		return nil, mtlsid.Errorf(mtlsid.KindRateLimited, "too many failed enrollments from this address; wait a minute")
	}
	name := a.AgentName
	if name == "" {
		name = a.Device
	}
	var csr []byte
	if a.CSR != "" {
		csr = authority.DecodeCSR(a.CSR)
	}
	out, err := h.auth.Enroll(ctx, authority.EnrollRequest{Token: a.Authorization, Name: name, DeviceType: a.DeviceType, CSR: csr})
	if err != nil {
		if h.limiter != nil && isTokenFailure(err) {
			h.limiter.failed(ip)
		}
		return nil, err
	}
	return certResult(wire.OutcomeIssued, out)
}

func isTokenFailure(err error) bool {
	switch mtlsid.ErrorKind(err) {
	case mtlsid.KindUnauthorized, mtlsid.KindUsed, mtlsid.KindExpired:
		return true
	}
	return false
}

// caller authenticates the request by its client certificate. Any failure
// is reported as unauthorised, with the reason.
func (h *Handler) caller(ctx context.Context, r *http.Request) (*mtlsid.Certificate, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, mtlsid.Errorf(mtlsid.KindUnauthorized, "this operation needs your client certificate (mTLS)")
	}
	c, err := h.auth.Caller(ctx, r.TLS.PeerCertificates[0])
	switch mtlsid.ErrorKind(err) {
	case "":
		return c, nil
	case mtlsid.KindRevoked:
		return nil, mtlsid.Errorf(mtlsid.KindUnauthorized, "your client certificate is revoked")
	case mtlsid.KindExpired:
		return nil, mtlsid.Errorf(mtlsid.KindUnauthorized, "your client certificate has expired")
	}
	return nil, err
}

func (h *Handler) renew(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	var csr []byte
	if a.CSR != "" {
		csr = authority.DecodeCSR(a.CSR)
	}
	rn, err := h.auth.Renew(ctx, c, authority.RenewRequest{Tentative: a.Tentative, RevokePrevious: a.RevokePrevious, Name: a.Device, CSR: csr})
	if err != nil {
		return nil, err
	}
	if rn.Issued == nil {
		return wire.CertificateResult{Outcome: wire.OutcomeNotDue, Name: c.Name, SerialNumber: c.Serial, NotBefore: c.NotBefore.UnixMilli(), NotAfter: c.NotAfter.UnixMilli(), RenewalDue: rn.Due.UnixMilli()}, nil
	}
	return certResult(wire.OutcomeRenewed, rn.Issued)
}

func (h *Handler) devices(ctx context.Context, r *http.Request, _ *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	certs, err := h.auth.Devices(ctx, c)
	if err != nil {
		return nil, err
	}
	now := h.now()
	res := wire.DevicesResult{Outcome: wire.OutcomeOK, Identities: []wire.Device{}}
	for _, d := range certs {
		if d.Status(now) != mtlsid.StatusActive {
			continue
		}
		res.Identities = append(res.Identities, wire.Device{
			SerialNumber: d.Serial, Name: d.Name, DeviceType: d.DeviceType, Profile: string(d.Profile),
			Status: string(d.Status(now)), NotBefore: d.NotBefore.UnixMilli(), NotAfter: d.NotAfter.UnixMilli(),
			RenewedFrom: d.RenewedFrom, Current: d.Serial == c.Serial,
		})
	}
	return res, nil
}

func (h *Handler) revoke(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	if a.SerialNumber == "" {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "serial-number is required")
	}
	serial, err := mtlsid.NormalizeSerial(a.SerialNumber)
	if err != nil {
		return nil, err
	}
	if err := h.auth.Revoke(ctx, c, serial, mtlsid.ReasonCessationOfOperation); err != nil {
		return nil, err
	}
	return wire.RevokeResult{Outcome: wire.OutcomeRevoked, SerialNumber: serial}, nil
}

func certResult(outcome string, out *authority.Issued) (wire.CertificateResult, error) {
	res := wire.CertificateResult{
		Outcome: outcome, Name: out.Record.Name, SerialNumber: out.Record.Serial,
		Certificate: b64(out.CertificatePEM()), Chain: b64(out.ChainPEM()),
		NotBefore: out.Record.NotBefore.UnixMilli(), NotAfter: out.Record.NotAfter.UnixMilli(),
		RenewalDue: mtlsid.RenewalPoint(out.Record.NotBefore, out.Record.NotAfter).UnixMilli(),
	}
	if out.PrivateKey != nil {
		keyPEM, err := out.PrivateKeyPEM()
		if err != nil {
			return res, fmt.Errorf("encode generated key: %w", err)
		}
		res.PrivateKey, res.P12, res.Password = b64(keyPEM), b64(out.PKCS12), out.Password
	}
	return res, nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return strings.TrimSpace(r.RemoteAddr)
	}
	return host
}
