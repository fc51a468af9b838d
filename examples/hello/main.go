// Command hello is a small web service that identifies its visitors with
// mtlsid through the Go SDK and shows them what it saw: its Request
// Details page (Method: Certificate or Redirect, serial, device, roles,
// and the forwarded headers it trusted).
//
// Run it against a local `mtlsid serve` in two commands (see README.md):
//
//	mtlsid apicert issue --service hello.acme --out ./hello-api
//	go run ./examples/hello -authority https://localhost:8443 -ca mtlsid-data/ca/root.crt -dir ./hello-api
package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid/sdk"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hello", flag.ContinueOnError)
	fs.SetOutput(stderr)
	authority := fs.String("authority", "https://localhost:8443", "the mtlsid server")
	caFile := fs.String("ca", "mtlsid-data/ca/root.crt", "the authority's root certificate (PEM)")
	dir := fs.String("dir", "./hello-api", "directory of the API certificate (`mtlsid apicert issue --out`)")
	name := fs.String("name", "api", "the API certificate's agent name (DIR/NAME.cer, DIR/NAME.key)")
	listen := fs.String("listen", "127.0.0.1:9443", "address to serve HTTPS on")
	public := fs.String("public", "", "the URL browsers use (a verified domain of the service); default https://<service default domain>:<port>")
	proxies := fs.String("trusted-proxy", "", "comma-separated addresses or CIDRs whose forwarded identity headers are trusted (the gateway in forward mode)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	certFile, keyFile := filepath.Join(*dir, *name+".cer"), filepath.Join(*dir, *name+".key")
	client, err := sdk.NewIdentityClient(*authority, sdk.WithRootCAFile(*caFile), sdk.WithCertificateFiles(certFile, keyFile), sdk.WithLogger(log))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()

	// Keep the API certificate fresh.
	renewer, err := sdk.NewRenewer(client, certFile, keyFile)
	if err != nil {
		return err
	}
	go renewer.Run(ctx)

	// The service's own server certificate, from the authority, for its
	// verified domains.
	si, err := client.ServiceIdentity(ctx, true)
	if err != nil {
		return fmt.Errorf("service certificate: %w", err)
	}
	serverCert, err := keyPair(si.Certificate, si.PrivateKey)
	if err != nil {
		return err
	}
	if *public == "" {
		_, port, _ := strings.Cut(*listen, ":")
		*public = "https://" + serverCert.Leaf.DNSNames[0] + ":" + port
	}

	opts := []sdk.MiddlewareOption{sdk.WithPublicURL(*public), sdk.WithMiddlewareLogger(log)}
	if *proxies != "" {
		opts = append(opts, sdk.WithTrustedProxies(strings.Split(*proxies, ",")...))
	}
	mw, err := sdk.NewMiddleware(ctx, client, opts...)
	if err != nil {
		return err
	}
	defer mw.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /{$}", mw.Wrap(http.HandlerFunc(details)))
	mux.Handle("GET /admin", mw.RequireRoles("administrator")(http.HandlerFunc(details)))
	srv := &http.Server{
		Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: mw.TLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{serverCert}}),
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("hello is serving", "url", *public, "listen", *listen)
	if err := srv.ListenAndServeTLS("", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func keyPair(certB64, keyB64 string) (tls.Certificate, error) {
	certPEM, err := base64.StdEncoding.DecodeString(certB64)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

var page = template.Must(template.New("details").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hello · Request Details</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}th{text-align:left;padding-right:1rem}</style></head>
<body><h1>Hello{{with .P.LocalUser}}, {{.}}{{end}}</h1>
<h2>Request Details</h2>
<table>
<tr><th>Method</th><td>{{.P.Method}}</td></tr>
<tr><th>Serial</th><td>{{.P.Serial}}</td></tr>
<tr><th>Device</th><td>{{.P.DeviceName}} {{with .P.DeviceType}}({{.}}){{end}}</td></tr>
<tr><th>Roles</th><td>{{range .P.Roles}}{{.}} {{else}}none{{end}}</td></tr>
<tr><th>Local user</th><td>{{.P.LocalUser}}</td></tr>
<tr><th>Trust score</th><td>{{.P.Trust}}</td></tr>
<tr><th>Outcome</th><td>{{.P.Outcome}}</td></tr>
<tr><th>TLS</th><td>{{.TLS}}</td></tr>
<tr><th>Forwarded headers trusted</th><td>{{range .P.TrustedHeaders}}{{.}} {{else}}none{{end}}</td></tr>
</table></body></html>
`))

// details shows the profile the middleware put in the request context.
func details(w http.ResponseWriter, r *http.Request) {
	tlsVersion := "none"
	if r.TLS != nil {
		tlsVersion = tls.VersionName(r.TLS.Version)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = page.Execute(w, struct {
		P   *sdk.Profile
		TLS string
	}{sdk.FromContext(r.Context()), tlsVersion})
}
