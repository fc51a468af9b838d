package sdk_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
	"github.com/mtlsid/mtlsid/sdk"
)

func TestClientCalls(t *testing.T) {
	backends(t, func(t *testing.T, store mtlsid.Store) {
		e := newEnv(t, store)
		ctx := context.Background()
		c := e.client
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
		alice := e.enroll("alice")

		_, err := c.Inquire(ctx, alice.serial)
		if !errors.Is(err, sdk.ErrNeedsValidation) || !errors.Is(err, sdk.ErrProblem) || errors.Is(err, sdk.ErrAPI) {
			t.Fatalf("first inquiry: %v", err)
		}
		var oe *sdk.OutcomeError
		if !errors.As(err, &oe) || oe.Outcome != idwire.PB0003 || oe.Code() != "PB 0003" {
			t.Fatalf("outcome error: %#v", err)
		}
		if _, err := c.Inquire(ctx, "12345"); !errors.Is(err, sdk.ErrUnknownCertificate) {
			t.Errorf("unknown serial: %v", err)
		}
		if _, err := c.CreateIntent(ctx, idwire.Intent{ReturnURL: "https://evil.example/"}); !errors.Is(err, sdk.ErrRequestDenied) || !errors.Is(err, sdk.ErrAPI) {
			t.Errorf("foreign return URL: %v", err)
		}

		// Through the sign-on page once, then every object.
		ref, err := c.CreateIntent(ctx, idwire.Intent{ReturnURL: "https://shop.acme.mtls.test/after"})
		if err != nil {
			t.Fatal(err)
		}
		e.signon(alice, c.SignonURL(ref))
		p, err := c.Inquire(ctx, ref)
		if err != nil || p.Outcome != idwire.OK0001 || p.AuthorizingCertificate != alice.serial {
			t.Fatalf("inquiry by intent: %v %+v", err, p)
		}
		if p, err = c.BindLocalUser(ctx, idwire.LocalUserInformation{SerialNumber: alice.serial, LocalUserName: "alice"}); err != nil || p.Outcome != idwire.OK0100 {
			t.Fatalf("bind: %v %+v", err, p)
		}
		if _, err = c.BindLocalUser(ctx, idwire.LocalUserInformation{SerialNumber: alice.serial, LocalUserName: "alice"}); !errors.Is(err, &sdk.OutcomeError{Outcome: idwire.ER0003}) {
			t.Errorf("bind twice: %v", err)
		}
		if p, err = c.AddTrust(ctx, idwire.Trust{LocalUserName: "alice", TokensOfTrust: 90}); err != nil || p.LocalTrust != 100 {
			t.Errorf("trust: %v %+v", err, p)
		}
		if p, err = c.SetUserSecret(ctx, "alice", "s3cr3t"); err != nil || p.UserSecret != "s3cr3t" {
			t.Errorf("secret: %v %+v", err, p)
		}
		irRef, err := c.ReportIntrusion(ctx, idwire.IntrusionReport{IntrudingCertificateUID: alice.serial, Severity: "intrusive", Message: "test"})
		if err != nil || irRef == "" {
			t.Fatalf("report: %v", err)
		}
		if _, err := c.Inquire(ctx, alice.serial); !errors.Is(err, sdk.ErrIntruder) {
			t.Errorf("after the report: %v", err)
		}
		if err := c.WithdrawIntrusion(ctx, irRef); err != nil {
			t.Errorf("withdraw: %v", err)
		}
		if err := c.UnbindLocalUser(ctx, "alice"); err != nil {
			t.Errorf("unbind: %v", err)
		}
		if err := c.UnbindLocalUser(ctx, "alice"); !errors.Is(err, &sdk.OutcomeError{Outcome: idwire.ER0005}) {
			t.Errorf("unbind twice: %v", err)
		}
		si, err := c.ServiceIdentity(ctx, true)
		if err != nil || si == nil || si.Certificate == "" {
			t.Errorf("service identity: %v %+v", err, si)
		}
		other := e.apiCert()
		if err := c.RevokeCertificate(ctx, other.serial); err != nil {
			t.Errorf("revoke own API certificate: %v", err)
		}
	})
}

func TestClientRetriesOnlyTransient(t *testing.T) {
	// A port nobody listens on: the dial fails, every attempt is made.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var dials atomic.Int32
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}}
	c, err := sdk.NewIdentityClient("https://"+addr, sdk.WithHTTPClient(&http.Client{Transport: tr}),
		sdk.WithRetries(3), sdk.WithBackoff(time.Millisecond, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateIntent(context.Background(), idwire.Intent{ReturnURL: "https://x/"}); err == nil {
		t.Fatal("no error from a closed port")
	}
	if n := dials.Load(); n != 4 {
		t.Errorf("%d dials, want 4 (one and three retries)", n)
	}

	// An outcome is not transient: one request only.
	e := newEnv(t, sqliteStore(t))
	var requests atomic.Int32
	base := e.client.HTTP.Transport
	counting := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		requests.Add(1)
		return base.RoundTrip(r)
	})}
	c2, _ := sdk.NewIdentityClient(e.url, sdk.WithHTTPClient(counting), sdk.WithBackoff(time.Millisecond, 5*time.Millisecond))
	if _, err := c2.Inquire(context.Background(), "12345"); !errors.Is(err, sdk.ErrUnknownCertificate) {
		t.Fatal(err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests for a PB outcome, want 1", n)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
