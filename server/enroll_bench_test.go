package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/internal/pgtest"
)

// BenchmarkEnroll measures issuance through the enroll operation over
// keep-alive HTTPS, each certificate persisted and audit-logged before it
// is answered, with client and server on the same machine. Tokens and the
// CSR are made before the timer starts. Run with a fixed count, e.g.
//
//	go test ./server -run '^$' -bench Enroll -benchtime 6000x
func BenchmarkEnroll(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchEnroll(b, openSQLite(b)) })
	b.Run("postgres", func(b *testing.B) { benchEnroll(b, openPostgres(b, pgtest.URL(b))) })
}

func benchEnroll(b *testing.B, store mtlsid.Store) {
	e := newEnv(b, store)
	tokens := e.mintTokens(b.N)
	_, csr := newCSR(b, "bench")
	bodies := make([][]byte, b.N)
	for i, tok := range tokens {
		bodies[i] = enrollBody(tok, "bench", csr)
	}
	tr := e.httpClient(nil).Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost = 256
	hc := &http.Client{Transport: tr}
	// Warm up the connection pool so handshakes are not timed.
	var next atomic.Int64
	var failed atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			resp, err := hc.Post(e.url+"/api/v1", "application/json", bytes.NewReader(bodies[i]))
			if err != nil {
				failed.Add(1)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d enrollments failed", n, b.N)
	}
}

// mintTokens makes n enrollment tokens, several at a time.
func (e *env) mintTokens(n int) []string {
	tokens := make([]string, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				secret, _, err := e.auth.CreateToken(context.Background(), authority.TokenRequest{Purpose: mtlsid.TokenDevice})
				if err != nil {
					e.t.Error(err)
					return
				}
				tokens[i] = secret
			}
		})
	}
	wg.Wait()
	return tokens
}
