package gateway_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid/gateway"
)

func TestValidate(t *testing.T) {
	ok := func() gateway.Perimeter {
		return gateway.Perimeter{Listen: ":8443", TLS: gateway.TLSFiles{CertFile: "s.crt", KeyFile: "s.key"}, Upstream: "http://127.0.0.1:8080"}
	}
	for _, tc := range []struct {
		name   string
		change func(p *gateway.Perimeter)
		err    string // "" for valid
	}{
		{"minimal", func(*gateway.Perimeter) {}, ""},
		{"localhost upstream", func(p *gateway.Perimeter) { p.Upstream = "http://localhost:3000" }, ""},
		{"ipv6 loopback upstream", func(p *gateway.Perimeter) { p.Upstream = "http://[::1]:3000" }, ""},
		{"https upstream", func(p *gateway.Perimeter) { p.Upstream = "https://app.internal:8443"; p.UpstreamCA = "ca.pem" }, ""},
		{"plain-text remote upstream", func(p *gateway.Perimeter) { p.Upstream = "http://10.0.0.5:8080" }, "insecure_plaintext_upstream"},
		{"plain-text name is not loopback", func(p *gateway.Perimeter) { p.Upstream = "http://app.internal:8080" }, "insecure_plaintext_upstream"},
		{"plain-text remote allowed", func(p *gateway.Perimeter) {
			p.Upstream = "http://10.0.0.5:8080"
			p.InsecurePlaintextUpstream = true
		}, ""},
		{"upstream_ca on http", func(p *gateway.Perimeter) { p.UpstreamCA = "ca.pem" }, "not https"},
		{"no upstream", func(p *gateway.Perimeter) { p.Upstream = "" }, "upstream is required"},
		{"upstream scheme", func(p *gateway.Perimeter) { p.Upstream = "ftp://127.0.0.1" }, "scheme"},
		{"no listen", func(p *gateway.Perimeter) { p.Listen = "" }, "listen is required"},
		{"bad listen", func(p *gateway.Perimeter) { p.Listen = "8443" }, "listen"},
		{"no tls", func(p *gateway.Perimeter) { p.TLS.KeyFile = "" }, "tls.cert"},
		{"client_cert", func(p *gateway.Perimeter) { p.ClientCert = "optional" }, "client_cert"},
		{"mode", func(p *gateway.Perimeter) { p.Mode = "gateway" }, "mode"},
		{"rule mode", func(p *gateway.Perimeter) { p.Paths = []gateway.Rule{{Path: "/a", Mode: "proxy"}} }, "mode"},
		{"wildcard", func(p *gateway.Perimeter) { p.Hostnames = []string{"*.example.com", "Shop.Example.com."} }, ""},
		{"inner wildcard", func(p *gateway.Perimeter) { p.Hostnames = []string{"a.*.example.com"} }, "wildcard"},
		{"bare wildcard", func(p *gateway.Perimeter) { p.Hostnames = []string{"*example.com"} }, "wildcard"},
		{"path", func(p *gateway.Perimeter) { p.Paths = []gateway.Rule{{Path: "admin"}} }, "must start with /"},
		{"anonymous with roles", func(p *gateway.Perimeter) {
			p.Paths = []gateway.Rule{{Path: "/", Anonymous: true, Roles: gateway.Roles{AnyOf: []string{"a"}}}}
		}, "anonymous"},
		{"exempt cidr", func(p *gateway.Perimeter) { p.Paths = []gateway.Rule{{Path: "/", ExemptIPs: []string{"10.0.0.0/33"}}} }, "exempt_ips"},
		{"exempt address", func(p *gateway.Perimeter) {
			p.Paths = []gateway.Rule{{Path: "/", ExemptIPs: []string{"10.1.2.3", "fd00::/8"}}}
		}, ""},
		{"header name", func(p *gateway.Perimeter) { p.Headers.ID = "X mTLS" }, "header name"},
		{"strip name", func(p *gateway.Perimeter) { p.StripHeaders = []string{"X-User:"} }, "header name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok()
			tc.change(&p)
			err := gateway.Config{Perimeters: []gateway.Perimeter{p}}.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, gateway.ErrConfig) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one about %q", err, tc.err)
			}
		})
	}
	if err := (gateway.Config{}).Validate(); !errors.Is(err, gateway.ErrConfig) {
		t.Errorf("no perimeters: %v", err)
	}
	// Default names (the first hostname) may repeat across ports.
	ports := gateway.Config{Perimeters: []gateway.Perimeter{ok(), ok()}}
	ports.Perimeters[0].Hostnames, ports.Perimeters[1].Hostnames = []string{"a.example"}, []string{"a.example"}
	ports.Perimeters[1].Listen = ":9443"
	if err := ports.Validate(); err != nil {
		t.Errorf("one hostname on two ports: %v", err)
	}
	two := gateway.Config{Perimeters: []gateway.Perimeter{ok(), ok()}}
	two.Perimeters[0].Name, two.Perimeters[1].Name = "a", "a"
	if err := two.Validate(); err == nil || !strings.Contains(err.Error(), "named a") {
		t.Errorf("duplicate names: %v", err)
	}
}
