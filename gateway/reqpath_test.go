package gateway

import (
	"net/url"
	"testing"
)

func TestRulePath(t *testing.T) {
	for _, tc := range []struct {
		target, want string
		ok           bool
	}{
		{"/", "/", true},
		{"/admin/x?q=/../", "/admin/x", true},
		{"//admin", "/admin", true},
		{"/a///b//", "/a/b/", true},
		{"/%61dmin", "/admin", true},
		{"/a/b.c/.d/..e", "/a/b.c/.d/..e", true},
		{"*", "*", true},
		{"/public/../admin", "", false},
		{"/public/./admin", "", false},
		{"/public/..", "", false},
		{"/..", "", false},
		{"/public/%2e%2e/admin", "", false},
		{"/public/.%2E/admin", "", false},
		{"/public%2F..%2Fadmin", "", false},
		{"/public%2fadmin", "", false},
		{"/public%5cadmin", "", false},
		{"/public\\admin", "", false},
	} {
		u, err := url.ParseRequestURI(tc.target)
		if err != nil {
			t.Fatalf("%s: %v", tc.target, err)
		}
		got, ok := rulePath(u)
		if ok != tc.ok || got != tc.want {
			t.Errorf("rulePath(%q) = %q, %v; want %q, %v", tc.target, got, ok, tc.want, tc.ok)
		}
	}
}
