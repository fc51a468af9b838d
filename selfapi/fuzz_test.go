package selfapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/ca"
	"github.com/mtlsid/mtlsid/selfapi"
	"github.com/mtlsid/mtlsid/selfapi/wire"
	"github.com/mtlsid/mtlsid/store/sqlite"
)

// FuzzRequestBody feeds arbitrary bodies to the handler, backed by a real
// authority on SQLite. Whatever the body, the answer is the JSON envelope,
// a server error never happens, and a refused body writes nothing.
func FuzzRequestBody(f *testing.F) {
	for _, seed := range []string{
		`{"operation":"enroll","args":{"authorization":"mtid_x","agent-name":"a","csr":"AAAA"}}`,
		`{"operation":"enroll","args":{"authorization":5}}`,
		`{"operation":"renew_certificate","args":{"tentative":"yes"}}`,
		`{"operation":"revoke","args":{"serial-number":"0x"}}`,
		`{"operation":"get_active_identities","args":null}`,
		`{"operation":"enroll","args":{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"}}`,
		`{"operation":"create_organization","args":{"org":"acme","name":"Acme"}}`,
		`{"operation":"add_domain","args":{"service":5,"domain":["x"]}}`,
		`{"operation":"grant_role","args":{"service":"web.acme","serial-number":"0x1","role":"editor"}}`,
		`{"operation":"create_token","args":{"purpose":"device","ttl":9223372036854775807}}`,
		`{"operation":"issue_service_certificate","args":{"force-renew":true}}`,
		`[]`, `null`, `"x"`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		f.Fatal(err)
	}
	defer store.Close()
	c, err := ca.Init(filepath.Join(dir, "ca"), ca.InitConfig{})
	if err != nil {
		f.Fatal(err)
	}
	auth, err := authority.New(authority.Config{Store: store, CA: c})
	if err != nil {
		f.Fatal(err)
	}
	defer auth.Close()
	h, err := selfapi.New(selfapi.Config{Authority: auth, FailedEnrollLimit: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		before, _ := store.AuditLog(context.Background(), 0, 1<<20)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, wire.Path, bytes.NewReader(body)))
		var r wire.Response
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
			t.Fatalf("answer is not JSON: %q", rec.Body.String())
		}
		if rec.Code >= 500 && rec.Code != http.StatusNotImplemented {
			t.Fatalf("status %d for %q: %s", rec.Code, body, r.Error)
		}
		if rec.Code != http.StatusOK {
			if r.Error == "" {
				t.Fatalf("status %d without an error message", rec.Code)
			}
			after, _ := store.AuditLog(context.Background(), 0, 1<<20)
			if len(after) != len(before) {
				t.Fatalf("refused body %q wrote %d audit entries", body, len(after)-len(before))
			}
		}
	})
}
