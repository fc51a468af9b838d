package gateway_test

import (
	"io"
	"log/slog"
	"testing"
)

// BenchmarkAccessLog is a keep-alive request through the gateway (an
// identified certificate, answer cached) with the access log off and
// on (text, to io.Discard): the log's cost per request.
func BenchmarkAccessLog(b *testing.B) {
	e := newEnv(b)
	alice := e.enroll("alice-laptop")
	e.consent(alice)
	up := newUpstream(b)
	certFile, keyFile, roots := serverCert(b, e.dir, "shop.example.com")
	mw := newMW(b, e)
	for _, tc := range []struct {
		name string
		log  *slog.Logger
	}{{"off", nil}, {"on", slog.New(slog.NewTextHandler(io.Discard, nil))}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := shopConfig(certFile, keyFile, up.ts.URL, "x")
			cfg.Logger = tc.log
			g := startGateway(b, cfg, mw, nil)
			hc := httpsClient(g.Addrs()[0].String(), "shop.example.com", roots, &alice.tls, true)
			for b.Loop() {
				if s, err := getStatus(hc, "https://shop.example.com/"); s != 200 {
					b.Fatal(s, err)
				}
			}
		})
	}
}
