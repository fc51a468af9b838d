package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid/sdk"
)

func TestDetailsPage(t *testing.T) {
	p := &sdk.Profile{Serial: "1234", Method: sdk.MethodRedirect, DeviceName: "alice-laptop", Roles: []string{"administrator"}, TrustedHeaders: []string{"X-Mtls-Id"}}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r = r.WithContext(sdk.NewContext(r.Context(), p))
	w := httptest.NewRecorder()
	details(w, r)
	for _, want := range []string{"Redirect", "1234", "alice-laptop", "administrator", "X-Mtls-Id"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("page lacks %q:\n%s", want, w.Body)
		}
	}
}
