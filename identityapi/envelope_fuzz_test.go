package identityapi

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/ca"
	"github.com/mtlsid/mtlsid/identityapi/wire"
	"github.com/mtlsid/mtlsid/store/sqlite"
)

// envelopeSeeds are bodies a client could send: every object, wrong
// types, broken envelopes. The fuzzer mutates them.
var envelopeSeeds = []string{
	`{"Identity-Inquiry":{"serial-number":"1"}}`,
	`{"Identity-Inquiry":{"anonymous-id":"0x1f","service":"api.acme"}}`,
	`{"Identity-Inquiry":{"serial-number":5}}`,
	`{"Intent":{"type":"discover","return-url":"https://shop.example/","strict-massl":true}}`,
	`{"Intent":{"type":"request","local-user-name":"bob","local-user-age":"old"}}`,
	`{"Local-User-Information":{"serial-number":"1","local-user-name":"bob","local-user-age":3,"tokens-of-trust":2}}`,
	`{"Local-User-Reference":{"local-user-name":"bob"}}`,
	`{"Trust":{"local-user-name":"bob","tokens-of-trust":-9223372036854775808}}`,
	`{"User-Secret":{"local-user-name":"bob","secret":"s3cr3t"}}`,
	`{"Intrusion-Report":{"intruding-certificate-uid":"1","severity":"high","intruding-request-headers":["a",1]}}`,
	`{"Intrusion-Reference":{"value":"ref"}}`,
	`{"Service-Identity-Request":{"force-renewal":"yes"}}`,
	`{"Service-Agent-Identity-Request":{"agent-name":"worker"}}`,
	`{"Identity-Revocation-Request":{"serial-number":"0x01"}}`,
	`{"Identity-Inquiry":{},"Intent":{}}`,
	`{"Identity-Inquiry":null}`,
	`{"Identity-Inquiry":[]}`,
	`{"Unknown-Object":{}}`,
	`{"Identity-Inquiry":{"serial-number":"1"},"Identity-Inquiry":{"serial-number":"2"}}`,
	`{}`, `[]`, `null`, `"x"`, `{`, ``, " \n", "{\"\xff\":{}}",
}

func init() {
	// A number too large for an int field: its digits must not come back
	// in the error message.
	envelopeSeeds = append(envelopeSeeds, `{"Trust":{"local-user-name":"bob","tokens-of-trust":`+strings.Repeat("9", 600)+`}}`)
}

// FuzzUnwrap checks the envelope decoder on its own: it accepts exactly
// the JSON objects with one member, refuses everything else with one of
// its two fixed messages (never echoing the input), and what it accepts
// wraps back into an envelope that unwraps to the same object.
func FuzzUnwrap(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		name, raw, err := unwrap(body)
		if err != nil {
			if name != "" || raw != nil {
				t.Fatalf("error %v with a result %q", err, name)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "the body must be a JSON object") && msg != "the envelope must hold exactly one object" {
				t.Fatalf("unexpected error message %q", msg)
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(body, &m) == nil && len(m) == 1 {
				t.Fatalf("refused a one-member object %q: %v", body, err)
			}
			return
		}
		if !json.Valid(body) || !json.Valid(raw) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		again, err := json.Marshal(map[string]json.RawMessage{name: raw})
		if err != nil {
			t.Fatalf("re-encoding %q: %v", name, err)
		}
		name2, raw2, err := unwrap(again)
		if err != nil {
			t.Fatalf("re-encoded envelope %q refused: %v", again, err)
		}
		if name2 != name || !jsonEqual(raw, raw2) {
			t.Fatalf("round trip changed the object: %q %s -> %q %s", name, raw, name2, raw2)
		}
	})
}

// jsonEqual reports whether a and b hold the same JSON value; numbers are
// compared as written, and escapes (json.Marshal writes & as \u0026) do
// not count.
func jsonEqual(a, b []byte) bool {
	va, errA := decodeAny(a)
	vb, errB := decodeAny(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

func decodeAny(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// fuzzMethods are the methods the fuzzer picks from.
var fuzzMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch}

// outcomes is every outcome string the handler may send.
var outcomes = map[string]bool{}

func init() {
	for _, o := range []string{
		wire.OK0000, wire.OK0001, wire.OK0002, wire.OK0100, wire.OK0101, wire.OK0102,
		wire.PB0000, wire.PB0002, wire.PB0003, wire.PB0004, wire.PB0005, wire.PB0006, wire.PB0008,
		wire.ER0001, wire.ER0002, wire.ER0003, wire.ER0004, wire.ER0005, wire.ER0006,
		wire.ER0007, wire.ER0008, wire.ER0009, wire.ER0010, wire.ER0011, wire.ER0012,
		wire.ER1100, wire.ER1101, wire.ER1102, wire.ER1103, wire.ER1104, wire.ER1105,
	} {
		outcomes[o] = true
	}
}

// responseTypes maps each answer's object name to its wire type.
var responseTypes = map[string]reflect.Type{
	wire.ObjSimpleResponse:       reflect.TypeFor[wire.SimpleResponse](),
	wire.ObjIdentityProfile:      reflect.TypeFor[wire.IdentityProfile](),
	wire.ObjIntentReference:      reflect.TypeFor[wire.IntentReference](),
	wire.ObjReferenceNumber:      reflect.TypeFor[wire.ReferenceNumber](),
	wire.ObjServiceIdentity:      reflect.TypeFor[wire.ServiceIdentity](),
	wire.ObjServiceAgentIdentity: reflect.TypeFor[wire.ServiceIdentity](),
}

// FuzzHandler sends arbitrary bodies, by any method, to the /v1 handler
// of a real authority on SQLite, as a service's API certificate. Whatever
// the input, the answer is one wrapped object of a known type that
// decodes strictly and re-encodes to the same JSON; its status is 200,
// or 413 exactly when the body is over the limit; it is never an internal
// error (ER 0000, ER 1106); error messages are bounded; and a refused request (ER outcome) leaves the
// audit chain unchanged.
func FuzzHandler(f *testing.F) {
	for i, s := range envelopeSeeds {
		f.Add(uint8(i), false, []byte(s))
	}
	f.Add(uint8(2), true, []byte(`{}`))
	f.Add(uint8(2), true, []byte(``))
	h, api, store := fuzzAuthority(f)
	ctx := context.Background()
	var seq int64 // last audit entry seen
	f.Fuzz(func(t *testing.T, m uint8, pad bool, body []byte) {
		if pad {
			// Padding with whitespace keeps the JSON meaning and puts the
			// body over the limit exactly when it is not empty.
			body = append(bytes.Repeat([]byte{' '}, wire.MaxBody), body...)
		}
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		seq = auditHead(t, store, seq)
		req := httptest.NewRequestWithContext(ctx, method, wire.Path, bytes.NewReader(body))
		req.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{api}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		tooBig := len(body) > wire.MaxBody
		switch {
		case tooBig && rec.Code != http.StatusRequestEntityTooLarge:
			t.Fatalf("%d-byte body: status %d, want 413", len(body), rec.Code)
		case !tooBig && rec.Code != http.StatusOK:
			t.Fatalf("%s %q: status %d: %s", method, body, rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("content type %q", ct)
		}
		var env map[string]json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || len(env) != 1 {
			t.Fatalf("answer is not one wrapped object: %q", rec.Body)
		}
		for name, raw := range env {
			outcome := checkAnswer(t, name, raw)
			if !outcomes[outcome] {
				t.Fatalf("%s %q: unknown or internal outcome %q: %s", method, body, outcome, raw)
			}
			if strings.HasPrefix(outcome, "ER") {
				if after := auditHead(t, store, seq); after != seq {
					t.Fatalf("refused request %q (%s) wrote %d audit entries", body, outcome, after-seq)
				}
			}
		}
	})
}

// maxMessage bounds an error message, in bytes.
const maxMessage = 512

// checkAnswer decodes one answer strictly as its wire type, checks that it
// re-encodes to the same JSON, and returns its outcome.
func checkAnswer(t *testing.T, name string, raw json.RawMessage) string {
	t.Helper()
	typ, ok := responseTypes[name]
	if !ok {
		t.Fatalf("unknown answer object %q", name)
	}
	v := reflect.New(typ)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v.Interface()); err != nil {
		t.Fatalf("%s does not decode as %s: %v: %s", name, typ, err, raw)
	}
	again, err := json.Marshal(v.Interface())
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(raw, again) {
		t.Fatalf("%s does not round-trip:\n%s\n%s", name, raw, again)
	}
	switch a := v.Elem().Interface().(type) {
	case wire.SimpleResponse:
		// Messages explain; they never echo an unbounded piece of input.
		if len(a.Message) > maxMessage {
			t.Fatalf("%d-byte message: %.200q...", len(a.Message), a.Message)
		}
		return a.Outcome
	case wire.IdentityProfile:
		return a.Outcome
	case wire.ServiceIdentity:
		if a.Certificate == "" || a.PrivateKey == "" {
			t.Fatalf("%s without a certificate or key", name)
		}
		return a.Outcome
	case wire.IntentReference:
		if a.Value == "" {
			t.Fatalf("empty intent reference")
		}
	case wire.ReferenceNumber:
		if a.Value == "" {
			t.Fatalf("empty reference number")
		}
	}
	return wire.OK0000
}

// auditHead returns the sequence number of the last audit entry, reading
// only the entries after from.
func auditHead(t *testing.T, store mtlsid.Store, from int64) int64 {
	t.Helper()
	for {
		page, err := store.AuditLog(context.Background(), from, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return from
		}
		from = page[len(page)-1].Seq
	}
}

// fuzzAuthority is a real authority on SQLite with an organization, a
// service and its API certificate, and the /v1 handler on it.
func fuzzAuthority(f *testing.F) (*Handler, *x509.Certificate, mtlsid.Store) {
	ctx := context.Background()
	dir := f.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	c, err := ca.Init(filepath.Join(dir, "ca"), ca.InitConfig{})
	if err != nil {
		f.Fatal(err)
	}
	// Server certificates (Service-Identity-Request) need revocation URLs.
	if c, err = c.WithConfig(ca.Config{OCSPURL: "http://127.0.0.1:1/ca/ocsp", CRLURL: "http://127.0.0.1:1/ca/crl", IssuerURL: "http://127.0.0.1:1/ca/issuer.crt"}); err != nil {
		f.Fatal(err)
	}
	auth, err := authority.New(authority.Config{Store: store, CA: c})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(auth.Close)
	csr := func() []byte {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			f.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			f.Fatal(err)
		}
		return der
	}
	tok, _, err := auth.CreateToken(ctx, authority.TokenRequest{})
	if err != nil {
		f.Fatal(err)
	}
	admin, err := auth.Enroll(ctx, authority.EnrollRequest{Token: tok, Name: "admin", CSR: csr()})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := auth.CreateOrg(ctx, &admin.Record, "acme", "Acme", ""); err != nil {
		f.Fatal(err)
	}
	svc, err := auth.CreateService(ctx, &admin.Record, "acme", "api")
	if err != nil {
		f.Fatal(err)
	}
	api, err := auth.IssueAPICert(ctx, &admin.Record, authority.APICertRequest{ServiceID: svc.ID, Name: "fuzz", CSR: csr()})
	if err != nil {
		f.Fatal(err)
	}
	return New(auth, nil), api.Certificate, store
}
