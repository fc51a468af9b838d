package agent

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// Kind says how an identity renews.
type Kind string

// The kinds of identity.
const (
	// KindCertificate is a device or API certificate that renews itself
	// (renew_certificate, authenticated by itself).
	KindCertificate Kind = "certificate"
	// KindServer is a service's server certificate, renewed with one of
	// the service's API certificates (issue_service_certificate).
	KindServer Kind = "server"
)

// Identity is one certificate the engine keeps fresh.
type Identity struct {
	Name  string // for logs and status
	Kind  Kind   // zero: KindCertificate
	Files Files  // the certificate kept fresh
	// Auth is the API certificate a KindServer identity renews with;
	// unused for KindCertificate, which authenticates with Files.
	Auth   Files
	Reload Reload
	// RevokePrevious revokes the replaced certificate (KindCertificate).
	RevokePrevious bool
}

// Engine renews identities. Its zero value is not usable: set Server.
type Engine struct {
	// Server is the authority's URL; Roots the CAs to trust for it (nil:
	// the system's).
	Server string
	Roots  *x509.CertPool
	// Fraction of the lifetime after which a certificate is due. Zero
	// means two thirds, the point the authority itself counts from.
	Fraction float64
	// Jitter spreads renewals: up to this fraction of the lifetime is
	// added to the due point, the same amount for the same certificate
	// every time (it is drawn from the serial), so restarts keep the
	// schedule. Zero means none.
	Jitter  float64
	Timeout time.Duration    // per request; zero: 40 s
	Logger  *slog.Logger     // nil: discard
	Now     func() time.Time // nil: time.Now
	// Trace receives request and response bodies (they hold keys).
	Trace interface{ Write([]byte) (int, error) }
}

// Outcome is what one renewal attempt did.
type Outcome struct {
	Renewed  bool
	Serial   string    // the current certificate's serial
	NotAfter time.Time // and its end
	// Due is when the authority will renew the current certificate, when
	// it said none was due yet.
	Due time.Time
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// client returns a self-authority client that presents the certificate in
// auth, read from disk at each handshake so a renewal takes effect at once.
func (e *Engine) client(auth Files) *sdk.SelfClient {
	timeout := e.Timeout
	if timeout == 0 {
		timeout = 40 * time.Second
	}
	conf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    e.Roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return auth.KeyPair()
		},
	}
	sc := &sdk.SelfClient{URL: e.Server, HTTP: &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: conf}}}
	if e.Trace != nil {
		sc.Trace = e.Trace
	}
	return sc
}

// DuePoint is when the engine renews cert: Fraction of its life, plus the
// certificate's jitter.
func (e *Engine) DuePoint(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	f := e.Fraction
	if f <= 0 || f >= 1 {
		f = 2.0 / 3
	}
	due := cert.NotBefore.Add(time.Duration(float64(life) * f))
	if e.Jitter > 0 {
		sum := sha256.Sum256(cert.SerialNumber.Bytes())
		u := float64(binary.BigEndian.Uint64(sum[:8])) / float64(^uint64(0))
		due = due.Add(time.Duration(u * e.Jitter * float64(life)))
	}
	if due.After(cert.NotAfter) {
		due = cert.NotAfter
	}
	return due
}

// Next returns when id is next due: now if it has no certificate yet (a
// server certificate not issued) or it cannot be read.
func (e *Engine) Next(id Identity) time.Time {
	cert, err := id.Files.Certificate()
	if err != nil {
		return e.now()
	}
	return e.DuePoint(cert)
}

// Renew renews id: always with force, otherwise only when the authority
// agrees it is due (two thirds of the life passed; for a server
// certificate, also when its domains changed). On a new certificate it
// writes the files and runs the reload hook; a failed hook is an error,
// but the new files stay.
func (e *Engine) Renew(ctx context.Context, id Identity, force bool) (*Outcome, error) {
	var out *Outcome
	var err error
	switch id.Kind {
	case KindServer:
		out, err = e.renewServer(ctx, id, force)
	case KindCertificate, "":
		out, err = e.renewCertificate(ctx, id, force)
	default:
		return nil, fmt.Errorf("agent: %s: unknown kind %q", id.Name, id.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id.Name, err)
	}
	if out.Renewed {
		e.log().Info("renewed", "identity", id.Name, "serial", out.Serial, "not_after", out.NotAfter)
		if err := id.Reload.Run(ctx); err != nil {
			return out, fmt.Errorf("%s: renewed, but the reload hook failed: %w", id.Name, err)
		}
	}
	return out, nil
}

func (e *Engine) renewCertificate(ctx context.Context, id Identity, force bool) (*Outcome, error) {
	cur, err := id.Files.Certificate()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no certificate at %s.cer: enroll first", id.Files.Base)
	}
	if err != nil {
		return nil, err
	}
	// The engine's schedule may be later than the authority's two thirds
	// (jitter), never earlier, unless Fraction says so: then only a forced
	// renewal would be accepted.
	tentative := !force && (e.Fraction == 0 || e.Fraction >= 2.0/3)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cur.Subject.CommonName}}, key)
	if err != nil {
		return nil, err
	}
	res, err := e.client(id.Files).Renew(ctx, wire.Args{Tentative: tentative, RevokePrevious: id.RevokePrevious, CSR: base64.StdEncoding.EncodeToString(csr)})
	if err != nil {
		return nil, err
	}
	if res.Outcome == wire.OutcomeNotDue {
		return &Outcome{Serial: res.SerialNumber, NotAfter: time.UnixMilli(res.NotAfter), Due: time.UnixMilli(res.RenewalDue)}, nil
	}
	return e.save(id.Files, key, res)
}

func (e *Engine) renewServer(ctx context.Context, id Identity, force bool) (*Outcome, error) {
	res, err := e.client(id.Auth).ServiceCertificate(ctx, force)
	if err != nil {
		return nil, err
	}
	if res.Outcome == wire.OutcomeNotDue {
		out := &Outcome{}
		if cert, err := id.Files.Certificate(); err == nil {
			out.Serial, out.NotAfter, out.Due = cert.SerialNumber.String(), cert.NotAfter, e.DuePoint(cert)
		}
		return out, nil
	}
	keyPEM, err := base64.StdEncoding.DecodeString(res.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("the authority sent an undecodable key: %w", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("the authority sent no key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("the authority sent a key that cannot sign")
	}
	return e.save(id.Files, key, &res.CertificateResult)
}

func (e *Engine) save(f Files, key crypto.Signer, res *wire.CertificateResult) (*Outcome, error) {
	certPEM, err := base64.StdEncoding.DecodeString(res.Certificate)
	if err != nil {
		return nil, fmt.Errorf("the authority sent an undecodable certificate: %w", err)
	}
	chainPEM, err := base64.StdEncoding.DecodeString(res.Chain)
	if err != nil {
		return nil, fmt.Errorf("the authority sent an undecodable chain: %w", err)
	}
	certs, err := parseCerts(certPEM)
	if err != nil || len(certs) != 1 {
		return nil, errors.New("the authority sent no certificate")
	}
	if pub, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("the authority certified a different key; nothing written")
	}
	if err := f.Save(key, certPEM, chainPEM); err != nil {
		return nil, err
	}
	return &Outcome{Renewed: true, Serial: certs[0].SerialNumber.String(), NotAfter: certs[0].NotAfter}, nil
}
