package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mtlsid/mtlsid"
)

// MaxOCSPRequestSize bounds an OCSP request. A request for one certificate
// is about 100 bytes; even a signed one with a chain stays under this.
const MaxOCSPRequestSize = 10 << 10

// DefaultOCSPValidity is how long an OCSP response is valid when
// OCSPConfig.Validity is zero.
const DefaultOCSPValidity = time.Hour

// OCSPConfig configures an OCSPResponder.
type OCSPConfig struct {
	// Issuer is the issuing CA certificate, and Signer its key: responses
	// are signed by the CA itself, so clients need no delegated responder
	// certificate. Both are required.
	Issuer *x509.Certificate
	Signer crypto.Signer
	// Lookup returns the certificate with a decimal serial, or an error
	// matching mtlsid.ErrNotFound if the CA never issued it. An error of
	// KindUnavailable makes the response "tryLater"; any other error
	// "internalError". Required.
	Lookup func(ctx context.Context, serial string) (*mtlsid.Certificate, error)
	// Prefix is the URL path the responder is mounted at, e.g.
	// "/ca/ocsp": a GET request's path is Prefix, "/", and the request in
	// URL-escaped base64. Zero means the responder sees paths with the
	// prefix already stripped (http.StripPrefix).
	Prefix string
	// Validity is nextUpdate - thisUpdate of each response, and how long
	// HTTP caches may keep a GET response. Zero: DefaultOCSPValidity.
	Validity time.Duration
	Now      func() time.Time // nil: time.Now
	Logger   *slog.Logger     // nil: discard
}

// OCSPResponder answers OCSP requests for the certificates of one issuing
// CA. It is an http.Handler, safe for concurrent use.
//
// It fails closed: a request it cannot parse gets "malformedRequest", one
// about another issuer "unauthorized", a serial the CA never issued
// "unknown", and a store that cannot answer "tryLater" — never "good".
// Request nonces are not echoed (RFC 5019 responders need not), so clients
// such as openssl warn that the response has no nonce.
type OCSPResponder struct {
	cfg OCSPConfig
	log *slog.Logger
	// The issuer's name and key hashes, per hash algorithm a request may
	// use, so a request about another CA is told apart cheaply.
	hashes map[crypto.Hash][2][]byte
}

// NewOCSPResponder returns a responder for cfg, or an error if a required
// field is missing or Signer is not the key of Issuer.
func NewOCSPResponder(cfg OCSPConfig) (*OCSPResponder, error) {
	if cfg.Issuer == nil || cfg.Signer == nil || cfg.Lookup == nil {
		return nil, errors.New("ocsp responder: Issuer, Signer and Lookup are required")
	}
	if pub, ok := cfg.Signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cfg.Issuer.PublicKey) {
		return nil, errors.New("ocsp responder: Signer is not the key of Issuer")
	}
	if cfg.Validity < 0 {
		return nil, errors.New("ocsp responder: Validity must not be negative")
	}
	if cfg.Validity == 0 {
		cfg.Validity = DefaultOCSPValidity
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Prefix = strings.TrimSuffix(cfg.Prefix, "/")
	r := &OCSPResponder{cfg: cfg, log: cfg.Logger, hashes: map[crypto.Hash][2][]byte{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(cfg.Issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, fmt.Errorf("ocsp responder: issuer key: %w", err)
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		r.hashes[h] = [2][]byte{digest(h, cfg.Issuer.RawSubject), digest(h, spki.PublicKey.RightAlign())}
	}
	return r, nil
}

func digest(h crypto.Hash, data []byte) []byte {
	d := h.New()
	d.Write(data)
	return d.Sum(nil)
}

// ServeHTTP answers GET (Prefix + "/" + URL-escaped base64 request) and
// POST (a DER body of Content-Type application/ocsp-request, at most
// MaxOCSPRequestSize bytes) with 200 and an application/ocsp-response,
// which may be an OCSP error response. An oversized body gets 413, another
// content type 415, another method 405.
//
// Mounted behind an http.ServeMux, a GET whose base64 holds "//" unescaped
// is redirected by the mux to a cleaned, broken path; clients that escape
// '/' as RFC 6960 asks are unaffected, and POST always is.
func (r *OCSPResponder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var der []byte
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		encoded, ok := strings.CutPrefix(req.URL.Path, r.cfg.Prefix+"/")
		if !ok {
			http.NotFound(w, req)
			return
		}
		der = decodeGET(encoded)
	case http.MethodPost:
		if ct := req.Header.Get("Content-Type"); ct != "" {
			if mt, _, _ := mime.ParseMediaType(ct); mt != "application/ocsp-request" {
				http.Error(w, "OCSP requests must have Content-Type application/ocsp-request", http.StatusUnsupportedMediaType)
				return
			}
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxOCSPRequestSize))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				http.Error(w, fmt.Sprintf("OCSP request larger than %d bytes", MaxOCSPRequestSize), http.StatusRequestEntityTooLarge)
			}
			// A client that went away gets nothing.
			return
		}
		der = body
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "OCSP requests are GET or POST", http.StatusMethodNotAllowed)
		return
	}

	resp, maxAge := r.respond(req.Context(), der)
	h := w.Header()
	h.Set("Content-Type", "application/ocsp-response")
	h.Set("Content-Length", strconv.Itoa(len(resp)))
	if req.Method != http.MethodPost {
		// RFC 5019 §6: GET responses may be cached until they go stale;
		// errors and "unknown" must not be, as the answer may change soon.
		if maxAge > 0 {
			h.Set("Cache-Control", fmt.Sprintf("max-age=%d, public, no-transform, must-revalidate", int(maxAge.Seconds())))
		} else {
			h.Set("Cache-Control", "no-cache, no-store")
		}
	}
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		w.Write(resp)
	}
}

// decodeGET undoes the GET encoding (RFC 6960 Appendix A.1): the request
// is base64, URL-escaped. The path reaches us unescaped; some clients do
// not escape at all, and some proxies turn '+' into a space, so both are
// taken back. Anything else undecodable gives nil, which parses as
// malformed.
func decodeGET(s string) []byte {
	if len(s) > MaxOCSPRequestSize*4/3+4 {
		return nil
	}
	s = strings.ReplaceAll(s, " ", "+")
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		der, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	if err != nil {
		return nil
	}
	return der
}

// respond returns the DER OCSP response to a DER request, and how long an
// HTTP cache may keep it (zero: not at all).
func (r *OCSPResponder) respond(ctx context.Context, der []byte) ([]byte, time.Duration) {
	req, err := ocsp.ParseRequest(der)
	if err != nil {
		r.log.DebugContext(ctx, "ocsp malformed request", "error", err.Error())
		return ocsp.MalformedRequestErrorResponse, 0
	}
	hashes, ok := r.hashes[req.HashAlgorithm]
	if !ok || !bytes.Equal(req.IssuerNameHash, hashes[0]) || !bytes.Equal(req.IssuerKeyHash, hashes[1]) {
		// A response must repeat the request's CertID, which names the
		// other issuer; x/crypto/ocsp can only name ours. RFC 5019 §2.2.3:
		// "unauthorized" for a responder not authoritative for the issuer.
		r.log.DebugContext(ctx, "ocsp request for another issuer", "serial", serialString(req.SerialNumber))
		return ocsp.UnauthorizedErrorResponse, 0
	}

	now := r.cfg.Now().UTC().Truncate(time.Second)
	tmpl := ocsp.Response{
		SerialNumber: req.SerialNumber,
		IssuerHash:   req.HashAlgorithm,
		ThisUpdate:   now,
		NextUpdate:   now.Add(r.cfg.Validity),
		Status:       ocsp.Unknown,
	}
	serial := serialString(req.SerialNumber)
	cert, err := r.lookup(ctx, req.SerialNumber)
	switch {
	case errors.Is(err, mtlsid.ErrNotFound) || mtlsid.ErrorKind(err) == mtlsid.KindNotFound:
	case mtlsid.ErrorKind(err) == mtlsid.KindUnavailable:
		r.log.WarnContext(ctx, "ocsp lookup unavailable", "serial", serial, "error", err.Error())
		return ocsp.TryLaterErrorResponse, 0
	case err != nil:
		r.log.ErrorContext(ctx, "ocsp lookup failed", "serial", serial, "error", err.Error())
		return ocsp.InternalErrorErrorResponse, 0
	case cert.Revoked():
		tmpl.Status = ocsp.Revoked
		tmpl.RevokedAt = cert.RevokedAt.UTC().Truncate(time.Second)
		tmpl.RevocationReason = cert.RevocationReason
	default:
		tmpl.Status = ocsp.Good
	}
	resp, err := ocsp.CreateResponse(r.cfg.Issuer, r.cfg.Issuer, tmpl, r.cfg.Signer)
	if err != nil {
		r.log.ErrorContext(ctx, "ocsp sign response", "serial", serial, "error", err.Error())
		return ocsp.InternalErrorErrorResponse, 0
	}
	r.log.DebugContext(ctx, "ocsp response", "serial", serial, "status", statusName(tmpl.Status))
	if tmpl.Status == ocsp.Unknown {
		return resp, 0
	}
	return resp, r.cfg.Validity
}

// lookup asks the store about a serial the CA could have issued; anything
// else is not found without bothering the store.
func (r *OCSPResponder) lookup(ctx context.Context, serial *big.Int) (*mtlsid.Certificate, error) {
	if serial == nil || serial.Sign() <= 0 || serial.BitLen() > 160 {
		return nil, mtlsid.ErrNotFound
	}
	cert, err := r.cfg.Lookup(ctx, serial.String())
	if err == nil && cert == nil {
		return nil, mtlsid.ErrNotFound
	}
	return cert, err
}

func serialString(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.String()
}

func statusName(s int) string {
	switch s {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return "revoked"
	}
	return "unknown"
}
