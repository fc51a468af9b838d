package server_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

func TestEnrollRenewRevoke(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		d := e.enroll("laptop", mtlsid.TokenDevice)

		chains, err := d.cert.Verify(x509.VerifyOptions{Roots: e.roots, Intermediates: pool(e.ca.Issuer()), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil || len(chains) == 0 {
			t.Fatalf("enrolled certificate does not verify: %v", err)
		}
		if d.cert.Subject.CommonName != "laptop" || len(d.cert.Subject.OrganizationalUnit) == 0 || d.cert.Subject.OrganizationalUnit[0] != mtlsid.DeviceDesktop {
			t.Errorf("subject = %v, want CN=laptop OU=Desktop", d.cert.Subject)
		}

		// Tentative renewal of a new certificate: not due.
		res, err := e.client(&d.tls).Renew(ctx, wire.Args{Tentative: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != wire.OutcomeNotDue || res.Certificate != "" {
			t.Fatalf("tentative renewal of a new certificate: outcome %q", res.Outcome)
		}

		// Forced renewal: a new certificate; the old one keeps working.
		key, csr := newCSR(t, "laptop")
		res, err = e.client(&d.tls).Renew(ctx, wire.Args{CSR: csr})
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != wire.OutcomeRenewed || res.SerialNumber == d.serial {
			t.Fatalf("forced renewal: outcome %q serial %s", res.Outcome, res.SerialNumber)
		}
		d2 := deviceFrom(t, key, res)
		list, err := e.client(&d.tls).Devices(ctx)
		if err != nil {
			t.Fatalf("old certificate stopped working after renewal: %v", err)
		}
		if len(list.Identities) != 2 {
			t.Fatalf("devices after renewal = %d, want 2", len(list.Identities))
		}

		// Tentative renewal past two thirds of the lifetime renews.
		e.advance(250 * 24 * time.Hour)
		res, err = e.client(&d2.tls).Renew(ctx, wire.Args{Tentative: true, RevokePrevious: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != wire.OutcomeRenewed || res.P12 == "" || res.Password == "" || res.PrivateKey == "" {
			t.Fatalf("renewal without CSR must return the generated key as PKCS#12: %+v", res)
		}
		p12, _ := base64.StdEncoding.DecodeString(res.P12)
		if _, _, _, err := pkcs12.DecodeChain(p12, res.Password); err != nil {
			t.Fatalf("PKCS#12 does not open with its password: %v", err)
		}
		// RevokePrevious retired d2.
		var apiErr *sdk.APIError
		if _, err := e.client(&d2.tls).Devices(ctx); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || !strings.Contains(apiErr.Message, "revoked") {
			t.Fatalf("revoked certificate still accepted: %v", err)
		}

		// Revoke the first device with the first device itself.
		if _, err := e.client(&d.tls).Revoke(ctx, mtlsid.HexSerial(d.serial)); err != nil {
			t.Fatal(err)
		}
		status := e.ocspStatus(d.cert)
		if status != ocsp.Revoked {
			t.Errorf("OCSP status after revocation = %d, want revoked", status)
		}
		crl := e.crl()
		if !crlLists(crl, d.cert) || !crlLists(crl, d2.cert) {
			t.Errorf("CRL does not list the revoked certificates")
		}
		e.auditLen()
	})
}

func TestEnrollWithoutCSR(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		res, err := e.client(nil).Enroll(context.Background(), wire.Args{Authorization: e.token(mtlsid.TokenAgent), AgentName: "billing-agent", Protect: true})
		if err != nil {
			t.Fatal(err)
		}
		p12, err := base64.StdEncoding.DecodeString(res.P12)
		if err != nil {
			t.Fatal(err)
		}
		key, cert, chain, err := pkcs12.DecodeChain(p12, res.Password)
		if err != nil {
			t.Fatalf("PKCS#12: %v", err)
		}
		if key == nil || cert.Subject.OrganizationalUnit[0] != mtlsid.DeviceAgent || len(chain) != 2 {
			t.Fatalf("agent PKCS#12: OU %v, chain %d", cert.Subject.OrganizationalUnit, len(chain))
		}
		keyPEM, _ := base64.StdEncoding.DecodeString(res.PrivateKey)
		if !bytes.Contains(keyPEM, []byte("PRIVATE KEY")) {
			t.Errorf("private-key is not base64 PEM")
		}
	})
}

func TestEndpoints(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		hc := e.httpClient(nil)
		for _, tc := range []struct {
			path, want string
		}{
			{"/healthz", "ok"},
			{"/readyz", "ready"},
			{"/metrics", "mtlsid_http_requests_total"},
			{"/ca/root.pem", "BEGIN CERTIFICATE"},
			{"/ca/chain.pem", "BEGIN CERTIFICATE"},
			{"/download/trust-chain?format=pem", "BEGIN CERTIFICATE"},
		} {
			body := get(t, hc, e.url+tc.path)
			if !strings.Contains(string(body), tc.want) {
				t.Errorf("%s: body lacks %q", tc.path, tc.want)
			}
		}
		der := get(t, hc, e.url+"/ca/root.crt")
		if c, err := x509.ParseCertificate(der); err != nil || !c.Equal(e.ca.Root()) {
			t.Errorf("/ca/root.crt is not the root in DER: %v", err)
		}
		if c, err := x509.ParseCertificate(get(t, hc, e.url+"/download/trust-chain?format=der")); err != nil || !c.Equal(e.ca.Root()) {
			t.Errorf("trust-chain?format=der is not the root: %v", err)
		}
		resp, err := hc.Get(e.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Strict-Transport-Security") == "" {
			t.Errorf("no HSTS header")
		}
		// The serving certificate covers the configured names and chains
		// to the CA.
		if err := resp.TLS.PeerCertificates[0].VerifyHostname("localhost"); err != nil {
			t.Errorf("serving certificate: %v", err)
		}
	})
}

func get(t testing.TB, hc *http.Client, url string) []byte {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func (e *env) ocspStatus(cert *x509.Certificate) int {
	e.t.Helper()
	req, err := ocsp.CreateRequest(cert, e.ca.Issuer(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.httpClient(nil).Post(e.url+"/ca/ocsp", "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r, err := ocsp.ParseResponseForCert(body, cert, e.ca.Issuer())
	if err != nil {
		e.t.Fatalf("OCSP response: %v", err)
	}
	return r.Status
}

func (e *env) crl() *x509.RevocationList {
	e.t.Helper()
	der := get(e.t, e.httpClient(nil), e.url+"/ca/crl")
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(e.ca.Issuer()); err != nil {
		e.t.Fatalf("CRL signature: %v", err)
	}
	if !crl.NextUpdate.After(crl.ThisUpdate) {
		e.t.Errorf("CRL nextUpdate %v not after thisUpdate %v", crl.NextUpdate, crl.ThisUpdate)
	}
	return crl
}

func crlLists(crl *x509.RevocationList, cert *x509.Certificate) bool {
	for _, r := range crl.RevokedCertificateEntries {
		if r.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return true
		}
	}
	return false
}
