package selfapi

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
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

// Authority is what the handler needs of the authority, one small
// interface per area so that each file declares what it calls.
// *authority.Authority satisfies it. Every administrative method checks the
// caller's organization role itself; the handler authenticates the caller
// and checks that arguments are present and well formed.
type Authority interface {
	DeviceAuthority
	OrgAuthority
	DomainAuthority
	RoleAuthority
	APICertAuthority
	TokenAuthority
	ContactAuthority
}

// DeviceAuthority enrolls, renews, lists and revokes a caller's own
// certificates.
type DeviceAuthority interface {
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
	ops     map[string]opFunc
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
	h.ops = map[string]opFunc{
		wire.OpEnroll:             h.enroll,
		wire.OpRenewCertificate:   h.renew,
		wire.OpGetActiveIdentites: h.devices,
		wire.OpRevoke:             h.revoke,

		wire.OpCreateOrganization: h.createOrg,
		wire.OpListOrganizations:  h.listOrgs,
		wire.OpAddMember:          h.addMember,
		wire.OpCreateService:      h.createService,
		wire.OpListServices:       h.listServices,
		wire.OpAddDomain:          h.addDomain,
		wire.OpVerifyDomain:       h.verifyDomain,
		wire.OpListDomains:        h.listDomains,
		wire.OpDefineRole:         h.defineRole,
		wire.OpGrantRole:          h.grantRole,
		wire.OpRevokeRole:         h.revokeRole,
		wire.OpListRoles:          h.listRoles,

		wire.OpIssueAPICertificate:     h.issueAPICert,
		wire.OpListAPICertificates:     h.listAPICerts,
		wire.OpRevokeAPICertificate:    h.revokeAPICert,
		wire.OpAssist:                  h.assist,
		wire.OpCreateToken:             h.createToken,
		wire.OpIssueServiceCertificate: h.issueServiceCert,
		wire.OpGetServiceRoles:         h.serviceRoles,
		wire.OpSetContact:              h.setContact,
		wire.OpGetContact:              h.getContact,
	}
	return h, nil
}

// opFunc is one operation. It authenticates the caller itself (enroll
// needs no certificate, issue_service_certificate needs an API one) and
// returns the result to encode, or an error for fail.
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
	if req.Operation == "" {
		h.fail(w, r, "", mtlsid.Errorf(mtlsid.KindInvalid, "no operation given"))
		return
	}
	op, ok := h.ops[req.Operation]
	if !ok {
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
		value, _, _ := strings.Cut(typeErr.Value, " ") // "number 1e999": never echo the digits
		return mtlsid.Errorf(mtlsid.KindInvalid, "%s: field %q must be a %s, not a %s", what, field, jsonType(typeErr.Type.Kind().String()), value)
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

// caller authenticates the request by its client certificate. Any failure
// is reported as unauthorised, with the reason.
func (h *Handler) caller(ctx context.Context, r *http.Request) (*mtlsid.Certificate, error) {
	peer, err := peerCert(r)
	if err != nil {
		return nil, err
	}
	c, err := h.auth.Caller(ctx, peer)
	if err != nil {
		return nil, callerError(err)
	}
	return c, nil
}

// apiCaller authenticates a service by one of its API certificates, for
// the operations a service performs on itself. A person's certificate is
// refused (KindForbidden).
func (h *Handler) apiCaller(ctx context.Context, r *http.Request) (*authority.APICaller, error) {
	peer, err := peerCert(r)
	if err != nil {
		return nil, err
	}
	c, err := h.auth.APICaller(ctx, peer)
	if err != nil {
		return nil, callerError(err)
	}
	return c, nil
}

func peerCert(r *http.Request) (*x509.Certificate, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, mtlsid.Errorf(mtlsid.KindUnauthorized, "this operation needs your client certificate (mTLS)")
	}
	return r.TLS.PeerCertificates[0], nil
}

// callerError reports a revoked or expired caller as unauthorised: the
// credential is what is wrong, not the request.
func callerError(err error) error {
	switch mtlsid.ErrorKind(err) {
	case mtlsid.KindRevoked:
		return mtlsid.Errorf(mtlsid.KindUnauthorized, "your client certificate is revoked")
	case mtlsid.KindExpired:
		return mtlsid.Errorf(mtlsid.KindUnauthorized, "your client certificate has expired")
	}
	return err
}

// required fails with KindInvalid naming the first empty argument; pairs
// are (name, value).
func required(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.TrimSpace(pairs[i+1]) == "" {
			return mtlsid.Errorf(mtlsid.KindInvalid, "%s is required", pairs[i])
		}
	}
	return nil
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return strings.TrimSpace(r.RemoteAddr)
	}
	return host
}
