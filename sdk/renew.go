package sdk

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"time"

	"github.com/mtlsid/mtlsid/internal/atomicfile"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// Renewer keeps a service's API certificate fresh: at two thirds of its
// life (plus a random part of the next twelfth, so that a fleet does not
// renew at once) it asks the authority for a successor with a new key
// (renew_certificate, tentative), writes key and certificate, and
// switches the client to it. Connections already open finish on the old
// certificate, which stays valid until it expires, so no request fails.
// It is safe for concurrent use.
type Renewer struct {
	client            *IdentityClient
	src               *CertSource
	certFile, keyFile string
	now               func() time.Time
	log               *slog.Logger
	jitter            func(max time.Duration) time.Duration
}

// NewRenewer renews the certificate of client, which must have been made
// with WithCertificateFiles or WithCertificate; certFile and keyFile are
// where the new certificate (with its chain) and key are written. Each
// file is replaced atomically, the key first: a crash between the two
// leaves a pair that LoadCertSource refuses, never a torn file.
func NewRenewer(client *IdentityClient, certFile, keyFile string) (*Renewer, error) {
	if client == nil || client.Certificates() == nil {
		return nil, errors.New("sdk: the renewer needs a client with a certificate source")
	}
	log := client.cfg.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Renewer{client: client, src: client.Certificates(), certFile: certFile, keyFile: keyFile,
		now: time.Now, log: log, jitter: func(max time.Duration) time.Duration { return mrand.N(max + 1) }}, nil
}

// SetClock replaces time.Now and the jitter (tests). Call it before Run.
func (r *Renewer) SetClock(now func() time.Time, jitter func(max time.Duration) time.Duration) {
	r.now, r.jitter = now, jitter
}

// NextRenewal is when Run will next renew: two thirds of the current
// certificate's life, plus jitter.
func (r *Renewer) NextRenewal() time.Time {
	leaf := r.src.Leaf()
	if leaf == nil {
		return r.now()
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(life * 2 / 3).Add(r.jitter(life / 12))
}

// Run renews whenever due until ctx ends, and returns ctx's error. A
// failed renewal is retried after a minute, doubling up to an hour, and
// logged; the current certificate stays in use.
func (r *Renewer) Run(ctx context.Context) error {
	retry := time.Duration(0)
	next := r.NextRenewal()
	for {
		wait := next.Sub(r.now())
		if retry > 0 {
			wait = retry
		}
		wait = max(wait, 0)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(wait, time.Hour)):
		}
		if retry == 0 && r.now().Before(next) {
			continue // woke up for the hourly re-check
		}
		_, err := r.Renew(ctx, false)
		if err != nil {
			retry = min(max(2*retry, time.Minute), time.Hour)
			r.log.Error("API certificate renewal failed; keeping the current one", "err", err, "retry_in", retry)
			continue
		}
		retry = 0
		next = r.NextRenewal()
	}
}

// Renew asks for a successor now: with force, whatever the certificate's
// age; otherwise only once two thirds of its life have passed (it returns
// false, nil when none is due). On success the files are written and the
// client uses the new certificate for every new connection.
func (r *Renewer) Renew(ctx context.Context, force bool) (bool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, err
	}
	leaf := r.src.Leaf()
	if leaf == nil {
		return false, errors.New("sdk: no current certificate")
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: leaf.Subject}, key)
	if err != nil {
		return false, err
	}
	res, err := r.client.Self().Renew(ctx, wire.Args{Tentative: !force, CSR: base64.StdEncoding.EncodeToString(csr)})
	if err != nil {
		return false, fmt.Errorf("sdk: renew API certificate: %w", err)
	}
	if res.Outcome == wire.OutcomeNotDue {
		return false, nil
	}
	certPEM, err := base64.StdEncoding.DecodeString(res.Certificate)
	if err != nil {
		return false, fmt.Errorf("sdk: renewed certificate is not base64: %w", err)
	}
	chainPEM, _ := base64.StdEncoding.DecodeString(res.Chain)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return false, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	full := append(append([]byte{}, certPEM...), chainPEM...)
	pair, err := tls.X509KeyPair(full, keyPEM)
	if err != nil {
		return false, fmt.Errorf("sdk: renewed certificate does not match its key: %w", err)
	}
	if r.keyFile != "" {
		if err := atomicfile.Write(r.keyFile, keyPEM, 0o600); err != nil {
			return false, err
		}
		if err := atomicfile.Write(r.certFile, full, 0o644); err != nil {
			return false, err
		}
	}
	if err := r.src.Set(pair); err != nil {
		return false, err
	}
	if t, ok := r.client.HTTP.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections() // new connections present the new certificate
	}
	r.log.Info("API certificate renewed", "serial", res.SerialNumber, "previous", leaf.SerialNumber.String())
	return true, nil
}
