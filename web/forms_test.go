package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestFormsCSRF(t *testing.T) {
	f := newForms([]byte("key"))
	rec := httptest.NewRecorder()
	tok := f.token(rec, httptest.NewRequest(http.MethodGet, "https://id.test/my", nil))
	cookie := rec.Result().Cookies()[0]
	if cookie.Name != csrfCookie || !cookie.Secure || !cookie.HttpOnly {
		t.Fatalf("cookie %+v", cookie)
	}
	post := func(form url.Values, c *http.Cookie, site string) error {
		r := httptest.NewRequest(http.MethodPost, "https://id.test/my/token", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if site != "" {
			r.Header.Set("Sec-Fetch-Site", site)
		}
		if c != nil {
			r.AddCookie(c)
		}
		return f.check(r)
	}
	other := newForms([]byte("other key"))
	for _, tc := range []struct {
		name   string
		form   url.Values
		cookie *http.Cookie
		site   string
		ok     bool
	}{
		{"valid", url.Values{csrfField: {tok}}, cookie, "same-origin", true},
		{"no token", url.Values{}, cookie, "same-origin", false},
		{"no cookie", url.Values{csrfField: {tok}}, nil, "same-origin", false},
		{"other cookie", url.Values{csrfField: {tok}}, &http.Cookie{Name: csrfCookie, Value: "AAAAAAAAAAAAAAAAAAAAAAAA"}, "same-origin", false},
		{"other key", url.Values{csrfField: {other.mac(cookie.Value)}}, cookie, "same-origin", false},
		{"cross-site", url.Values{csrfField: {tok}}, cookie, "cross-site", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := post(tc.form, tc.cookie, tc.site); (err == nil) != tc.ok {
				t.Errorf("check: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestAddrLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := newAddrLimiter(2, time.Hour, func() time.Time { return now })
	for i, want := range []bool{true, true, false} {
		if got := l.allow("a"); got != want {
			t.Fatalf("attempt %d: allowed %v, want %v", i+1, got, want)
		}
	}
	if !l.allow("b") {
		t.Error("another address is limited too")
	}
	now = now.Add(31 * time.Minute)
	if !l.allow("a") {
		t.Error("no refill after half the period")
	}
}

func TestFileName(t *testing.T) {
	for in, want := range map[string]string{"Anna's laptop": "mtlsid-Anna-s-laptop", "../..": "mtlsid-mtlsid", "ü": "mtlsid-mtlsid"} {
		if got := fileName(in); got != want {
			t.Errorf("fileName(%q) = %q, want %q", in, got, want)
		}
	}
}
