package identityapi

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/identityapi/wire"
)

// Authority is what the handler needs of the authority.
type Authority interface {
	APICaller(ctx context.Context, peer *x509.Certificate) (*authority.APICaller, error)
	Inquire(ctx context.Context, caller *authority.APICaller, ref, serviceID string) (*authority.Profile, error)
	CreateIntent(ctx context.Context, caller *authority.APICaller, req authority.IntentRequest) (string, error)
	BindLocalUser(ctx context.Context, caller *authority.APICaller, serial, name string, ageDays, tokens int) (*authority.Profile, error)
	UnbindLocalUser(ctx context.Context, caller *authority.APICaller, name string) error
	AddTrust(ctx context.Context, caller *authority.APICaller, serial, localUser string, tokens int) (*authority.Profile, error)
	SetSecret(ctx context.Context, caller *authority.APICaller, localUser, secret string) (*authority.Profile, error)
	ReportIntrusion(ctx context.Context, caller *authority.APICaller, r authority.IntrusionReport) (string, error)
	WithdrawIntrusion(ctx context.Context, caller *authority.APICaller, ref string) error
	ServiceIdentity(ctx context.Context, caller *authority.APICaller, force bool) (*authority.Issued, error)
	ServiceAgentIdentity(ctx context.Context, caller *authority.APICaller, agentName string) (*authority.Issued, error)
	RevokeOwn(ctx context.Context, caller *authority.APICaller, serial string) error
}

// Handler serves /v1. Every answer, errors included, is one wrapped
// object, as the reference's clients require. It is safe for concurrent
// use.
type Handler struct {
	auth Authority
	log  *slog.Logger
}

// New returns a Handler. A nil logger discards logs.
func New(auth Authority, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{auth: auth, log: log}
}

// reply is one wrapped answer and its HTTP status.
type reply struct {
	status int
	name   string
	body   any
}

func simple(outcome, message string) reply {
	return reply{http.StatusOK, wire.ObjSimpleResponse, wire.SimpleResponse{Outcome: outcome, Message: message}}
}

// Answer headers, shared: net/http only reads a header's values, and a
// handler that sets one replaces the slice rather than writing into it.
var (
	jsonType = []string{"application/json"}
	noStore  = []string{"no-store"}
	retry5   = []string{"5"}
)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := h.serve(r.Context(), w, r)
	obj, err := json.Marshal(rep.body)
	if err != nil {
		// Every answer is a wire struct; one that fails to encode is a bug.
		h.log.Error("identity api: encoding the answer", "object", rep.name, "err", err)
		rep = simple(wire.ER0001, "internal error")
		obj, _ = json.Marshal(rep.body)
	}
	// The envelope is written around the object, not built as a map and
	// encoded again: this is every Identity-Inquiry's answer.
	out := make([]byte, 0, len(obj)+len(rep.name)+6)
	out = append(out, `{"`...)
	out = append(out, rep.name...)
	out = append(out, `":`...)
	out = append(out, obj...)
	out = append(out, "}\n"...)
	hdr := w.Header()
	hdr["Content-Type"] = jsonType
	hdr["Cache-Control"] = noStore
	hdr["Content-Length"] = []string{strconv.Itoa(len(out))}
	if rep.status == http.StatusServiceUnavailable {
		hdr["Retry-After"] = retry5
	}
	w.WriteHeader(rep.status)
	_, _ = w.Write(out)
}

func (h *Handler) serve(ctx context.Context, w http.ResponseWriter, r *http.Request) reply {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return simple(wire.ER1100, "present your service's API certificate (mTLS)")
	}
	caller, err := h.auth.APICaller(ctx, r.TLS.PeerCertificates[0])
	if err != nil {
		return h.callerError(err)
	}
	body, err := readBody(w, r)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return reply{http.StatusRequestEntityTooLarge, wire.ObjSimpleResponse, wire.SimpleResponse{Outcome: wire.ER0008, Message: "request body is larger than 1 MiB"}}
	}
	if err != nil {
		return simple(wire.ER0008, "reading the request failed")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if r.Method == http.MethodPut {
			return simple(wire.OK0000, "pong")
		}
		return simple(wire.ER0008, "empty request: send one wrapped object, or an empty PUT to ping")
	}
	name, raw, err := unwrap(body)
	if err != nil {
		return simple(wire.ER0008, err.Error())
	}
	rep := h.dispatch(ctx, caller, r.Method, name, raw)
	// The arguments would be built for every inquiry even when the level
	// drops the line.
	if h.log.Enabled(ctx, slog.LevelInfo) {
		h.log.Info("identity api", "service", caller.Service.ID, "caller", caller.Cert.Serial, "method", r.Method, "object", name, "outcome", outcomeOf(rep))
	}
	return rep
}

// readBody reads the request body, at most wire.MaxBody bytes. A body of
// declared length is read into a buffer of that size.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > wire.MaxBody {
		return nil, &http.MaxBytesError{Limit: wire.MaxBody}
	}
	body := http.MaxBytesReader(w, r.Body, wire.MaxBody)
	if n := r.ContentLength; n >= 0 {
		buf := make([]byte, n)
		_, err := io.ReadFull(body, buf)
		return buf, err
	}
	return io.ReadAll(body)
}

func outcomeOf(rep reply) string {
	if s, ok := rep.body.(wire.SimpleResponse); ok {
		return s.Outcome
	}
	if p, ok := rep.body.(wire.IdentityProfile); ok {
		return p.Outcome
	}
	return rep.name
}

// unwrap takes the one object out of the envelope.
func unwrap(body []byte) (string, json.RawMessage, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		return "", nil, errors.New("the body must be a JSON object wrapping one request object, as {\"Identity-Inquiry\":{...}}")
	}
	if len(env) != 1 {
		return "", nil, errors.New("the envelope must hold exactly one object")
	}
	for k, v := range env {
		return k, v, nil
	}
	panic("unreachable")
}

func (h *Handler) callerError(err error) reply {
	switch {
	case errors.Is(err, authority.ErrExpectingAgent):
		return simple(wire.ER0012, "call with a service's API certificate, not a person's")
	}
	switch mtlsid.ErrorKind(err) {
	case mtlsid.KindUnauthorized:
		return simple(wire.ER1101, "")
	case mtlsid.KindExpired:
		return simple(wire.ER1102, "")
	case mtlsid.KindRevoked:
		return simple(wire.ER1103, "")
	case mtlsid.KindUnavailable:
		return reply{http.StatusServiceUnavailable, wire.ObjSimpleResponse, wire.SimpleResponse{Outcome: wire.ER1106, Message: "temporarily unavailable; retry"}}
	}
	h.log.Error("identity api: authenticating caller", "err", err)
	return simple(wire.ER1106, "")
}

// methods names which HTTP methods each object accepts. Some of the
// reference's clients send the inquiry by GET with a body, others by POST:
// every method is accepted for it.
var methods = map[string][]string{
	wire.ObjIdentityInquiry:        {http.MethodGet, http.MethodPost, http.MethodPut},
	wire.ObjIntent:                 {http.MethodPut, http.MethodPost},
	wire.ObjLocalUserInformation:   {http.MethodPut, http.MethodPost},
	wire.ObjLocalUserReference:     {http.MethodDelete},
	wire.ObjTrust:                  {http.MethodPut, http.MethodPost},
	wire.ObjUserSecret:             {http.MethodPut, http.MethodPost},
	wire.ObjIntrusionReport:        {http.MethodPut, http.MethodPost},
	wire.ObjIntrusionReference:     {http.MethodDelete},
	wire.ObjServiceIdentityRequest: {http.MethodPut, http.MethodPost},
	wire.ObjServiceAgentRequest:    {http.MethodPut, http.MethodPost},
	wire.ObjIdentityRevocation:     {http.MethodPut, http.MethodPost, http.MethodDelete},
}

func (h *Handler) dispatch(ctx context.Context, c *authority.APICaller, method, name string, raw json.RawMessage) reply {
	allowed, known := methods[name]
	if !known {
		return simple(wire.ER0002, "unknown object "+quote(name))
	}
	ok := false
	for _, m := range allowed {
		ok = ok || m == method
	}
	if !ok {
		return simple(wire.ER0002, method+" is not an operation of "+name)
	}
	switch name {
	case wire.ObjIdentityInquiry:
		var q wire.IdentityInquiry
		if rep, bad := decode(raw, &q); bad {
			return rep
		}
		ref := q.SerialNumber
		if ref == "" {
			ref = q.AnonymousID
		}
		if ref == "" {
			return simple(wire.ER0010, "serial-number is required")
		}
		p, err := h.auth.Inquire(ctx, c, ref, q.Service)
		return h.profileReply(p, err)
	case wire.ObjIntent:
		var in wire.Intent
		if rep, bad := decode(raw, &in); bad {
			return rep
		}
		ref, err := h.auth.CreateIntent(ctx, c, authority.IntentRequest{Type: mtlsid.IntentType(in.Type), ReturnURL: in.ReturnURL, StrictMassl: in.StrictMassl, LocalUserName: in.LocalUserName})
		if err != nil {
			return h.errorReply(err)
		}
		return reply{http.StatusOK, wire.ObjIntentReference, wire.IntentReference{Value: ref}}
	case wire.ObjLocalUserInformation:
		var in wire.LocalUserInformation
		if rep, bad := decode(raw, &in); bad {
			return rep
		}
		serial := in.SerialNumber
		if serial == "" {
			serial = in.AnonymousID
		}
		p, err := h.auth.BindLocalUser(ctx, c, serial, in.LocalUserName, in.LocalUserAge, in.TokensOfTrust)
		if err != nil {
			return h.errorReply(err)
		}
		return h.profileWith(p, wire.OK0100)
	case wire.ObjLocalUserReference:
		var in wire.LocalUserReference
		if rep, bad := decode(raw, &in); bad {
			return rep
		}
		if err := h.auth.UnbindLocalUser(ctx, c, in.LocalUserName); err != nil {
			if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
				return simple(wire.ER0005, "")
			}
			return h.errorReply(err)
		}
		return simple(wire.OK0101, "")
	case wire.ObjTrust:
		var in wire.Trust
		if rep, bad := decode(raw, &in); bad {
			return rep
		}
		serial := in.SerialNumber
		if serial == "" {
			serial = in.AnonymousID
		}
		p, err := h.auth.AddTrust(ctx, c, serial, in.LocalUserName, in.TokensOfTrust)
		return h.profileReply(p, err)
	case wire.ObjUserSecret:
		var in wire.UserSecret
		if rep, bad := decode(raw, &in); bad {
			return rep
		}
		p, err := h.auth.SetSecret(ctx, c, in.LocalUserName, in.Secret)
		return h.profileReply(p, err)
	case wire.ObjIntrusionReport:
		var in wire.IntrusionReport
		if rep, bad := decode(raw, &in); bad {
			return rep
		}
		ref, err := h.auth.ReportIntrusion(ctx, c, authority.IntrusionReport{
			Serial: in.IntrudingCertificateUID, Severity: in.Severity, Message: in.Message,
			Detail: map[string]any{"intruder-ip-address": in.IntruderIPAddress, "intruded-url": in.IntrudedURL, "intruding-request-headers": in.IntrudingRequestHeaders, "additional-information": in.AdditionalInformation},
		})
		if err != nil {
			if mtlsid.ErrorKind(err) == mtlsid.KindConflict {
				return simple(wire.ER0007, "")
			}
			return h.errorReply(err)
		}
		return reply{http.StatusOK, wire.ObjReferenceNumber, wire.ReferenceNumber{Value: ref}}
	case wire.ObjIntrusionReference:
		var in wire.IntrusionReference
		if rep, bad := decode(raw, &in); bad {
			return rep
		}
		if err := h.auth.WithdrawIntrusion(ctx, c, in.Value); err != nil {
			return h.errorReply(err)
		}
		return simple(wire.OK0000, "withdrawn")
	case wire.ObjServiceIdentityRequest:
		var in wire.ServiceIdentityRequest
		if rep, bad := decode(raw, &in); bad {
			return rep
		}
		out, err := h.auth.ServiceIdentity(ctx, c, in.ForceRenewal)
		if err != nil {
			return h.errorReply(err)
		}
		if out == nil {
			return simple(wire.OK0000, "no renewal due")
		}
		return h.identityReply(wire.ObjServiceIdentity, out)
	case wire.ObjServiceAgentRequest:
		var in wire.ServiceAgentIdentityRequest
		if rep, bad := decode(raw, &in); bad {
			return rep
		}
		out, err := h.auth.ServiceAgentIdentity(ctx, c, in.AgentName)
		if err != nil {
			return h.errorReply(err)
		}
		return h.identityReply(wire.ObjServiceAgentIdentity, out)
	case wire.ObjIdentityRevocation:
		var in wire.IdentityRevocationRequest
		if rep, bad := decode(raw, &in); bad {
			return rep
		}
		if err := h.auth.RevokeOwn(ctx, c, in.SerialNumber); err != nil {
			return h.errorReply(err)
		}
		return simple(wire.OK0000, "revoked")
	}
	return simple(wire.ER0002, "")
}

// decode reads one object strictly enough to catch wrong types: a field
// of the wrong JSON type is ER 0008 naming the field. Unknown fields are
// ignored, as the reference's clients send extras.
func decode(raw json.RawMessage, v any) (reply, bool) {
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			kind, _, _ := strings.Cut(te.Value, " ") // "number 1e999": never echo the digits
			return simple(wire.ER0008, "field "+quote(te.Field)+" must be a "+te.Type.Kind().String()+", not a "+kind), true
		}
		return simple(wire.ER0008, "the object must be a JSON object"), true
	}
	return reply{}, false
}

func (h *Handler) errorReply(err error) reply {
	switch {
	case errors.Is(err, authority.ErrReturnURLTooLong):
		return simple(wire.ER0006, "")
	case errors.Is(err, mtlsid.ErrLocalUserBound):
		return simple(wire.ER0003, "")
	case errors.Is(err, mtlsid.ErrLocalUserTaken):
		return simple(wire.ER0004, "")
	}
	msg := mtlsid.ErrorMessage(err)
	switch mtlsid.ErrorKind(err) {
	case mtlsid.KindInvalid, mtlsid.KindTooLarge:
		return simple(wire.ER0008, msg)
	case mtlsid.KindForbidden:
		return simple(wire.ER0009, msg)
	case mtlsid.KindNotFound:
		return simple(wire.ER0010, msg)
	case mtlsid.KindConflict, mtlsid.KindUsed, mtlsid.KindExpired, mtlsid.KindRevoked:
		return simple(wire.ER0009, msg)
	case mtlsid.KindNotImplemented:
		return simple(wire.ER0002, msg)
	case mtlsid.KindUnavailable:
		return reply{http.StatusServiceUnavailable, wire.ObjSimpleResponse, wire.SimpleResponse{Outcome: wire.ER1106, Message: "temporarily unavailable; retry"}}
	}
	h.log.Error("identity api", "err", err)
	return simple(wire.ER0000, "")
}

func (h *Handler) profileReply(p *authority.Profile, err error) reply {
	if err != nil {
		return h.errorReply(err)
	}
	switch p.Standing {
	case authority.StandingUnknown:
		return simple(wire.PB0006, "")
	case authority.StandingAuthorizationExpired:
		return simple(wire.PB0008, "the sign-on request expired")
	case authority.StandingRevoked:
		return simple(wire.PB0004, "")
	case authority.StandingExpired:
		return simple(wire.PB0002, "")
	case authority.StandingIntruder:
		return simple(wire.PB0005, "")
	case authority.StandingNeedsValidation:
		return simple(wire.PB0003, "send the person through the sign-on page with an Intent")
	case authority.StandingValidBound:
		return h.profileWith(p, wire.OK0002)
	}
	return h.profileWith(p, wire.OK0001)
}

func (h *Handler) profileWith(p *authority.Profile, outcome string) reply {
	ip := wire.IdentityProfile{
		Outcome: outcome, ServiceRoles: []string{}, TrustSponsors: []string{}, YourGuarantees: []string{}, CommunityGuarantees: []string{},
		TrustScore: p.TrustScore, AuthorizingCertificate: p.Authorizing, AverageIdentityAge: p.AgeDays, MaxIdentityAge: p.AgeDays,
	}
	if rel := p.Relation; rel != nil {
		if rel.Roles != nil {
			ip.ServiceRoles = rel.Roles
		}
		if rel.LocalUser != nil {
			ip.LocalUserName = rel.LocalUser.Name
		}
		if rel.TrustSponsors != nil {
			ip.TrustSponsors = rel.TrustSponsors
		}
		ip.UserSecret = rel.Secret
		ip.LocalTrust = rel.TrustTokens
		ip.LocalIntrusions = rel.Intrusions
		ip.SitesFrequented = rel.SitesFrequented
	}
	return reply{http.StatusOK, wire.ObjIdentityProfile, ip}
}

func (h *Handler) identityReply(name string, out *authority.Issued) reply {
	keyPEM, err := out.PrivateKeyPEM()
	if err != nil {
		return h.errorReply(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	return reply{http.StatusOK, name, wire.ServiceIdentity{
		Outcome: wire.OK0000, P12: b64(out.PKCS12), Password: out.Password,
		Certificate: b64(append(out.CertificatePEM(), out.ChainPEM()...)), PrivateKey: b64(keyPEM),
	}}
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}
