package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/mtlsid/mtlsid/sdk"
)

func ExampleNewIdentityClient() {
	ctx := context.Background()
	client, err := sdk.NewIdentityClient("https://id.example.com:8443",
		sdk.WithRootCAFile("mtlsid-root.pem"),
		sdk.WithCertificateFiles("api.crt", "api.key"))
	if err != nil {
		log.Fatal(err)
	}
	p, err := client.Inquire(ctx, "1234567890")
	switch {
	case errors.Is(err, sdk.ErrNeedsValidation):
		fmt.Println("send them through the sign-on page")
	case errors.Is(err, sdk.ErrProblem):
		fmt.Println("refused:", err)
	case err != nil:
		log.Fatal(err) // ER outcomes and transport errors, after retries
	default:
		fmt.Println(p.ServiceRoles)
	}
}

func ExampleNewMiddleware() {
	ctx := context.Background()
	client, err := sdk.NewIdentityClient("https://id.example.com:8443",
		sdk.WithRootCAFile("mtlsid-root.pem"), sdk.WithCertificateFiles("api.crt", "api.key"))
	if err != nil {
		log.Fatal(err)
	}
	mw, err := sdk.NewMiddleware(ctx, client, sdk.WithPublicURL("https://shop.example.com"))
	if err != nil {
		log.Fatal(err)
	}
	defer mw.Close()
	mux := http.NewServeMux()
	mux.Handle("/", mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := sdk.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s (%s, by %s)\n", p.LocalUser, p.Serial, p.Method)
	})))
	mux.Handle("/admin", mw.RequireRoles("administrator")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "admin area")
	})))
	srv := &http.Server{Addr: ":443", Handler: mux, TLSConfig: mw.TLSConfig(nil)}
	log.Fatal(srv.ListenAndServeTLS("server.crt", "server.key"))
}

func ExampleNewRenewer() {
	client, err := sdk.NewIdentityClient("https://id.example.com:8443",
		sdk.WithRootCAFile("mtlsid-root.pem"), sdk.WithCertificateFiles("api.crt", "api.key"))
	if err != nil {
		log.Fatal(err)
	}
	r, err := sdk.NewRenewer(client, "api.crt", "api.key")
	if err != nil {
		log.Fatal(err)
	}
	go r.Run(context.Background()) // renews at two thirds of the life, with jitter
}

func ExampleParseClientCert() {
	c, err := sdk.ParseClientCert(rfc9440Example)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.SerialNumber, c.Subject.CommonName)
	// Output: 7 BC
}
