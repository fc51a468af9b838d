package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// post sends a raw body to the self-authority API and returns the status
// and decoded response.
func (e *env) post(hc *http.Client, body []byte) (int, wire.Response) {
	e.t.Helper()
	resp, err := hc.Post(e.url+wire.Path, "application/json", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var r wire.Response
	if err := json.Unmarshal(data, &r); err != nil {
		e.t.Fatalf("answer is not the API's JSON envelope: %q", data)
	}
	return resp.StatusCode, r
}

func enrollBody(token, name, csr string) []byte {
	b, _ := json.Marshal(map[string]any{"operation": "enroll", "args": map[string]any{"authorization": token, "agent-name": name, "csr": csr}})
	return b
}

func TestBadInputChangesNothing(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		hc := e.httpClient(nil)
		_, goodCSR := newCSR(t, "box")

		weakKey, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		weakDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "weak"}}, weakKey)
		_, good := newCSR(t, "tampered")
		tampered, _ := base64.StdEncoding.DecodeString(good)
		tampered[len(tampered)-5] ^= 0xff // inside the signature

		used := e.token(mtlsid.TokenDevice)
		if _, err := e.client(nil).Enroll(context.Background(), wire.Args{Authorization: used, AgentName: "first", CSR: goodCSR}); err != nil {
			t.Fatal(err)
		}
		unusedToken := e.token(mtlsid.TokenDevice)

		cases := []struct {
			name   string
			body   []byte
			status int
			msg    string
		}{
			{"malformed JSON", []byte(`{"operation": "enroll", "args": {`), 400, "not valid JSON"},
			{"not an object", []byte(`[1,2,3]`), 400, "JSON object"},
			{"oversized body", append([]byte(`{"operation":"enroll","args":{"csr":"`), bytes.Repeat([]byte("A"), wire.MaxBody)...), 413, "larger than"},
			{"wrong type", []byte(`{"operation":"enroll","args":{"authorization":5}}`), 400, `"authorization" must be a string`},
			{"no operation", []byte(`{"args":{}}`), 400, "no operation"},
			{"unknown operation", []byte(`{"operation":"make_me_admin"}`), 501, "not implemented"},
			{"garbage CSR", enrollBody(unusedToken, "x", base64.StdEncoding.EncodeToString([]byte("not a csr"))), 400, "CSR"},
			{"oversized CSR", enrollBody(unusedToken, "x", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x30}, 70000))), 413, ""},
			{"weak RSA key", enrollBody(unusedToken, "x", base64.StdEncoding.EncodeToString(weakDER)), 400, "1024"},
			{"bad CSR signature", enrollBody(unusedToken, "x", base64.StdEncoding.EncodeToString(tampered)), 400, "signature"},
			{"control character in name", enrollBody(unusedToken, "bad\x00name", goodCSR), 400, "control character"},
			{"unknown token", enrollBody("mtid_nosuchtoken", "x", goodCSR), 401, "unknown token"},
			{"used token", enrollBody(used, "x", goodCSR), 401, "already used"},
			{"no token", enrollBody("", "x", goodCSR), 401, "no enrollment token"},
			{"renew without certificate", []byte(`{"operation":"renew_certificate","args":{}}`), 401, "client certificate"},
			{"list without certificate", []byte(`{"operation":"get_active_identities"}`), 401, "client certificate"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := e.auditLen()
				status, r := e.post(hc, tc.body)
				if status != tc.status || r.Error == "" || !strings.Contains(r.Error, tc.msg) {
					t.Errorf("status %d error %q (kind %s); want %d containing %q", status, r.Error, r.Kind, tc.status, tc.msg)
				}
				if after := e.auditLen(); after != before {
					t.Errorf("audit log grew from %d to %d: bad input changed state", before, after)
				}
			})
		}

		// The unused token survived all the bad requests that named it.
		if _, err := e.client(nil).Enroll(context.Background(), wire.Args{Authorization: unusedToken, AgentName: "ok", CSR: goodCSR}); err != nil {
			t.Fatalf("token was consumed by a failed enrollment: %v", err)
		}
	})
}

func TestExpiredAndRevokedCallers(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		alice := e.enroll("alice-laptop", mtlsid.TokenDevice)
		bob := e.enroll("bob-laptop", mtlsid.TokenDevice)
		var apiErr *sdk.APIError

		// Revoking someone else's device is refused and changes nothing.
		before := e.auditLen()
		_, err := e.client(&alice.tls).Revoke(ctx, bob.serial)
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
			t.Fatalf("revoking another identity's device: %v, want 403", err)
		}
		if e.auditLen() != before {
			t.Errorf("refused revocation changed state")
		}
		if _, err := e.client(&bob.tls).Devices(ctx); err != nil {
			t.Fatalf("bob's certificate was revoked by alice: %v", err)
		}

		// Malformed and unknown serials.
		for _, s := range []string{"", "-5", "0xZZ", strings.Repeat("9", 70)} {
			if _, err := e.client(&alice.tls).Revoke(ctx, s); !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
				t.Errorf("revoke %q: %v, want 400", s, err)
			}
		}
		if _, err := e.client(&alice.tls).Revoke(ctx, "12345"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
			t.Errorf("revoke unknown serial: %v, want 404", err)
		}

		// A revoked certificate can no longer renew.
		if _, err := e.client(&bob.tls).Revoke(ctx, bob.serial); err != nil {
			t.Fatal(err)
		}
		before = e.auditLen()
		if _, err := e.client(&bob.tls).Renew(ctx, wire.Args{}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || !strings.Contains(apiErr.Message, "revoked") {
			t.Fatalf("renewal by a revoked certificate: %v", err)
		}
		if e.auditLen() != before {
			t.Errorf("refused renewal changed state")
		}

		// Nor can an expired one; an expired token is refused too.
		tok := e.token(mtlsid.TokenDevice)
		e.advance(400 * 24 * time.Hour)
		before = e.auditLen()
		if _, err := e.client(&alice.tls).Renew(ctx, wire.Args{}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || !strings.Contains(apiErr.Message, "expired") {
			t.Fatalf("renewal by an expired certificate: %v", err)
		}
		_, csr := newCSR(t, "late")
		if _, err := e.client(nil).Enroll(ctx, wire.Args{Authorization: tok, AgentName: "late", CSR: csr}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || !strings.Contains(apiErr.Message, "expired") {
			t.Fatalf("enrollment with an expired token: %v", err)
		}
		if e.auditLen() != before {
			t.Errorf("refused requests changed state")
		}
	})
}

func TestFailedEnrollmentsAreRateLimited(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		_, csr := newCSR(t, "guess")
		var last int
		for range 31 {
			last, _ = e.post(e.httpClient(nil), enrollBody("mtid_guess", "guess", csr))
		}
		if last != http.StatusTooManyRequests {
			t.Fatalf("31st failed enrollment: status %d, want 429", last)
		}
		// Even a good token waits now: the limit is per address.
		status, _ := e.post(e.httpClient(nil), enrollBody(e.token(mtlsid.TokenDevice), "ok", csr))
		if status != http.StatusTooManyRequests {
			t.Errorf("enrollment while limited: %d, want 429", status)
		}
		e.advance(2 * time.Minute)
		if status, r := e.post(e.httpClient(nil), enrollBody(e.token(mtlsid.TokenDevice), "ok", csr)); status != http.StatusOK {
			t.Errorf("after the limit refilled: %d %s", status, r.Error)
		}
	})
}
