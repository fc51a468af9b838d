package revocation

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/ca"
)

// serveOCSP mounts a responder for p at /ca/ocsp the way package server
// does, on a loopback test server.
func serveOCSP(t testing.TB, p *testPKI, now func() time.Time) (*OCSPResponder, *httptest.Server) {
	t.Helper()
	r, err := NewOCSPResponder(OCSPConfig{
		Issuer: p.ca.Issuer(),
		Signer: p.ca.Signer(),
		Lookup: p.store.Lookup,
		Prefix: "/ca/ocsp",
		Now:    now,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ca/ocsp", r)
	mux.Handle("/ca/ocsp/", r)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return r, srv
}

func TestOCSPWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	p := newTestPKI(t)
	_, srv := serveOCSP(t, p, nil)
	dir := t.TempDir()
	issuer := writePEM(t, dir, "issuer.pem", p.ca.Issuer())
	root := writePEM(t, dir, "root.pem", p.ca.Root())
	leaf := writePEM(t, dir, "leaf.pem", p.leaf)

	query := func(args ...string) string {
		t.Helper()
		args = append([]string{"ocsp", "-issuer", issuer, "-CAfile", root, "-url", srv.URL + "/ca/ocsp", "-resp_text"}, args...)
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if !strings.Contains(string(out), "Response verify OK") {
			t.Errorf("openssl did not verify the response:\n%s", out)
		}
		return string(out)
	}

	if out := query("-cert", leaf); !strings.Contains(out, leaf+": good") {
		t.Errorf("want good:\n%s", out)
	}

	revokedAt := time.Now().Add(-time.Minute)
	p.store.revoke(p.leaf.SerialNumber.String(), revokedAt, mtlsid.ReasonKeyCompromise)
	out := query("-cert", leaf)
	if !strings.Contains(out, leaf+": revoked") || !strings.Contains(out, "Reason: keyCompromise") {
		t.Errorf("want revoked, keyCompromise:\n%s", out)
	}

	if out := query("-serial", "123456789"); !strings.Contains(out, ": unknown") {
		t.Errorf("want unknown:\n%s", out)
	}

	// GET: openssl writes the request, Go sends it the RFC 6960 A.1 way.
	reqFile := filepath.Join(dir, "req.der")
	if out, err := exec.Command(openssl, "ocsp", "-issuer", issuer, "-cert", leaf, "-no_nonce", "-reqout", reqFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl -reqout: %v\n%s", err, out)
	}
	reqDER, err := os.ReadFile(reqFile)
	if err != nil {
		t.Fatal(err)
	}
	resp, hdr := get(t, srv.URL+"/ca/ocsp/"+url.PathEscape(base64.StdEncoding.EncodeToString(reqDER)))
	parsed, err := ocsp.ParseResponseForCert(resp, p.leaf, p.ca.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Status != ocsp.Revoked || parsed.RevocationReason != ocsp.KeyCompromise {
		t.Errorf("GET: status %d reason %d, want revoked, key compromise", parsed.Status, parsed.RevocationReason)
	}
	if cc := hdr.Get("Cache-Control"); !strings.Contains(cc, "max-age=3600") {
		t.Errorf("GET Cache-Control %q", cc)
	}
}

func get(t *testing.T, u string) ([]byte, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/ocsp-response" {
		t.Fatalf("GET %s: %s %q", u, resp.Status, resp.Header.Get("Content-Type"))
	}
	return body, resp.Header
}

func post(t *testing.T, u, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(u, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

func TestOCSPStatuses(t *testing.T) {
	p := newTestPKI(t)
	now := time.Date(2030, 5, 1, 10, 0, 0, 0, time.UTC)
	_, srv := serveOCSP(t, p, func() time.Time { return now })
	u := srv.URL + "/ca/ocsp"

	request := func(t *testing.T, h crypto.Hash) []byte {
		t.Helper()
		der, err := ocsp.CreateRequest(p.leaf, p.ca.Issuer(), &ocsp.RequestOptions{Hash: h})
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	ask := func(t *testing.T, der []byte) (*ocsp.Response, error) {
		t.Helper()
		resp, body := post(t, u, "application/ocsp-request", der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %s", resp.Status)
		}
		return ocsp.ParseResponseForCert(body, p.leaf, p.ca.Issuer())
	}

	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384} {
		t.Run("good "+h.String(), func(t *testing.T) {
			r, err := ask(t, request(t, h))
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != ocsp.Good || r.IssuerHash != h || !r.ThisUpdate.Equal(now) || !r.NextUpdate.Equal(now.Add(time.Hour)) {
				t.Errorf("status %d hash %v this %v next %v", r.Status, r.IssuerHash, r.ThisUpdate, r.NextUpdate)
			}
		})
	}

	t.Run("unknown", func(t *testing.T) {
		// Issued by the same CA, but never stored.
		key, _ := ca.GenerateKey(ca.ECDSAP256, nil)
		leaf, err := p.ca.Issue(ca.Request{Profile: mtlsid.ProfileAgent, PublicKey: key.Public(), CommonName: "never-stored"})
		if err != nil {
			t.Fatal(err)
		}
		der, _ := ocsp.CreateRequest(leaf, p.ca.Issuer(), nil)
		_, body := post(t, u, "application/ocsp-request", der)
		r, err := ocsp.ParseResponseForCert(body, leaf, p.ca.Issuer())
		if err != nil || r.Status != ocsp.Unknown {
			t.Errorf("unknown serial: %v %v", r, err)
		}
	})

	t.Run("another issuer", func(t *testing.T) {
		other := newTestPKI(t)
		der, _ := ocsp.CreateRequest(other.leaf, other.ca.Issuer(), nil)
		_, body := post(t, u, "application/ocsp-request", der)
		checkOCSPError(t, body, ocsp.Unauthorized)
	})

	t.Run("store unavailable", func(t *testing.T) {
		p.store.setErr(&mtlsid.Error{Kind: mtlsid.KindUnavailable, Message: "storage unavailable", Err: errors.New("connection refused")})
		defer p.store.setErr(nil)
		_, body := post(t, u, "application/ocsp-request", request(t, crypto.SHA1))
		checkOCSPError(t, body, ocsp.TryLater)
	})

	t.Run("store broken", func(t *testing.T) {
		p.store.setErr(errors.New("disk on fire"))
		defer p.store.setErr(nil)
		_, body := post(t, u, "application/ocsp-request", request(t, crypto.SHA1))
		checkOCSPError(t, body, ocsp.InternalError)
	})

	t.Run("revoked unspecified", func(t *testing.T) {
		p.store.revoke(p.leaf.SerialNumber.String(), now.Add(-time.Hour), mtlsid.ReasonUnspecified)
		r, err := ask(t, request(t, crypto.SHA1))
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != ocsp.Revoked || !r.RevokedAt.Equal(now.Add(-time.Hour)) || r.RevocationReason != ocsp.Unspecified {
			t.Errorf("status %d at %v reason %d", r.Status, r.RevokedAt, r.RevocationReason)
		}
	})
}

func checkOCSPError(t *testing.T, body []byte, want ocsp.ResponseStatus) {
	t.Helper()
	_, err := ocsp.ParseResponse(body, nil)
	var re ocsp.ResponseError
	if !errors.As(err, &re) || re.Status != want {
		t.Errorf("response %x: err %v, want OCSP error %v", body, err, want)
	}
}

func TestOCSPBadRequests(t *testing.T) {
	p := newTestPKI(t)
	_, srv := serveOCSP(t, p, nil)
	u := srv.URL + "/ca/ocsp"

	for name, body := range map[string][]byte{
		"empty":    nil,
		"garbage":  []byte("not an ocsp request"),
		"sequence": {0x30, 0x00},
		"deep":     bytes.Repeat([]byte{0x30, 0x80}, 2000),
	} {
		t.Run("malformed POST "+name, func(t *testing.T) {
			resp, data := post(t, u, "application/ocsp-request", body)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(data, ocsp.MalformedRequestErrorResponse) {
				t.Errorf("%s, body %x", resp.Status, data)
			}
		})
	}
	t.Run("malformed GET", func(t *testing.T) {
		for _, path := range []string{"/ca/ocsp/!!!", "/ca/ocsp/", "/ca/ocsp/" + strings.Repeat("A", 20000)} {
			body, hdr := get(t, srv.URL+path)
			if !bytes.Equal(body, ocsp.MalformedRequestErrorResponse) || !strings.Contains(hdr.Get("Cache-Control"), "no-store") {
				t.Errorf("GET %.30s: body %x, Cache-Control %q", path, body, hdr.Get("Cache-Control"))
			}
		}
	})
	t.Run("oversized", func(t *testing.T) {
		resp, _ := post(t, u, "application/ocsp-request", make([]byte, MaxOCSPRequestSize+1))
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %s, want 413", resp.Status)
		}
	})
	t.Run("wrong content type", func(t *testing.T) {
		resp, _ := post(t, u, "application/json", []byte("{}"))
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("status %s, want 415", resp.Status)
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" {
			t.Errorf("status %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
		}
	})
	t.Run("GET unescaped", func(t *testing.T) {
		// Clients that do not escape the base64 ('+' kept, or turned into
		// a space by a proxy) still get an answer.
		der, _ := ocsp.CreateRequest(p.leaf, p.ca.Issuer(), nil)
		enc := base64.StdEncoding.EncodeToString(der)
		enc = strings.ReplaceAll(enc, "/", "%2F")
		for _, path := range []string{enc, strings.ReplaceAll(enc, "+", "%20"), strings.TrimRight(enc, "=")} {
			body, _ := get(t, srv.URL+"/ca/ocsp/"+path)
			if r, err := ocsp.ParseResponseForCert(body, p.leaf, p.ca.Issuer()); err != nil || r.Status != ocsp.Good {
				t.Errorf("GET %s: %v", path, err)
			}
		}
	})
}

func TestNewOCSPResponderValidates(t *testing.T) {
	p := newTestPKI(t)
	other := newTestPKI(t)
	lookup := p.store.Lookup
	for name, cfg := range map[string]OCSPConfig{
		"no issuer":     {Signer: p.ca.Signer(), Lookup: lookup},
		"no signer":     {Issuer: p.ca.Issuer(), Lookup: lookup},
		"no lookup":     {Issuer: p.ca.Issuer(), Signer: p.ca.Signer()},
		"wrong key":     {Issuer: p.ca.Issuer(), Signer: other.ca.Signer(), Lookup: lookup},
		"negative life": {Issuer: p.ca.Issuer(), Signer: p.ca.Signer(), Lookup: lookup, Validity: -time.Second},
	} {
		if _, err := NewOCSPResponder(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzOCSPRequest(f *testing.F) {
	p := newTestPKI(f)
	r, err := NewOCSPResponder(OCSPConfig{Issuer: p.ca.Issuer(), Signer: p.ca.Signer(), Lookup: p.store.Lookup})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := ocsp.CreateRequest(p.leaf, p.ca.Issuer(), nil)
	sha256, _ := ocsp.CreateRequest(p.leaf, p.ca.Issuer(), &ocsp.RequestOptions{Hash: crypto.SHA256})
	f.Add(good)
	f.Add(sha256)
	f.Add(good[:len(good)-3])
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, der []byte) {
		resp, _ := r.respond(context.Background(), der)
		if len(resp) == 0 {
			t.Fatal("empty response")
		}
		if _, err := ocsp.ParseResponse(resp, p.ca.Issuer()); err != nil {
			var re ocsp.ResponseError
			if !errors.As(err, &re) {
				t.Fatalf("response does not parse: %v", err)
			}
		}
		// The GET path decodes to the same bytes.
		if len(der) < MaxOCSPRequestSize {
			if got := decodeGET(base64.StdEncoding.EncodeToString(der)); !bytes.Equal(got, der) && len(der) > 0 {
				t.Fatalf("GET decoding changed the request")
			}
		}
	})
}
