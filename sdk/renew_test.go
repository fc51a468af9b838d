package sdk_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/sdk"
)

// TestRenewalWhileServing renews the API certificate (forced, several
// times, then by schedule with the clock moved past two thirds of its
// life) while requests flow through the client and the middleware; no
// request may fail.
func TestRenewalWhileServing(t *testing.T) {
	e := newEnv(t, sqliteStore(t))
	alice := e.enroll("alice")
	s := e.newService(t)
	if resp, _ := e.signIn(t, s, s.browser(alice), alice, "/hello"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	s2 := e.newService(t, sdk.WithCache(10, time.Millisecond)) // always asks the authority
	r, err := sdk.NewRenewer(e.client, e.certFile, e.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for range 4 {
		wg.Go(func() {
			hc := s2.browser(alice)
			for ctx.Err() == nil {
				if err := e.client.Ping(ctx); err != nil && ctx.Err() == nil {
					t.Errorf("ping: %v", err)
					failed.Add(1)
				}
				resp, err := hc.Get(s2.public + "/hello")
				if err != nil || resp.StatusCode != http.StatusOK {
					if ctx.Err() == nil {
						t.Errorf("request: %v %v", err, resp)
						failed.Add(1)
					}
				} else {
					ok.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		})
	}
	first := e.client.Certificates().Leaf().SerialNumber.String()
	before, _ := os.ReadFile(e.certFile)
	for range 3 {
		if renewed, err := r.Renew(ctx, true); err != nil || !renewed {
			t.Fatalf("forced renewal: %v %v", renewed, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Not due: a tentative renewal does nothing.
	if renewed, err := r.Renew(ctx, false); err != nil || renewed {
		t.Fatalf("tentative renewal of a fresh certificate: %v %v", renewed, err)
	}
	// By schedule: past two thirds of the life, Run renews at once.
	leaf := e.client.Certificates().Leaf()
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	e.offset.Store(int64(life*2/3 + time.Hour))
	r.SetClock(e.now, func(time.Duration) time.Duration { return 0 })
	runCtx, stopRun := context.WithCancel(ctx)
	go r.Run(runCtx)
	deadline := time.Now().Add(5 * time.Second)
	for e.client.Certificates().Leaf().SerialNumber.String() == leaf.SerialNumber.String() {
		if time.Now().After(deadline) {
			t.Fatal("Run did not renew a certificate past two thirds of its life")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopRun()
	time.Sleep(100 * time.Millisecond)
	cancel()
	wg.Wait()
	if failed.Load() > 0 || ok.Load() == 0 {
		t.Fatalf("%d requests failed, %d succeeded", failed.Load(), ok.Load())
	}
	t.Logf("%d requests during 4 renewals, none failed", ok.Load())
	after, _ := os.ReadFile(e.certFile)
	if bytes.Equal(before, after) || e.client.Certificates().Leaf().SerialNumber.String() == first {
		t.Error("certificate file or client certificate not replaced")
	}
	src, err := sdk.LoadCertSource(e.certFile, e.keyFile)
	if err != nil || src.Leaf().SerialNumber.Cmp(e.client.Certificates().Leaf().SerialNumber) != 0 {
		t.Errorf("files do not hold the client's certificate: %v", err)
	}
}
