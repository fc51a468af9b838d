package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/gateway"
	"github.com/mtlsid/mtlsid/sdk"
)

// TestUpgradePassesThrough: a WebSocket-style upgrade (HTTP/1.1, Connection:
// Upgrade) from an identified person reaches the upstream through the
// gateway with the forwarded identity, and bytes then flow both ways on
// the upgraded connection.
func TestUpgradePassesThrough(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := e.enroll("alice-laptop")
	e.consent(alice)

	seen := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		seen <- r.Header.Get("X-Mtls-Id")
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, err := rw.ReadString('\n') // echo one line
		if err == nil {
			rw.WriteString("echo " + line)
			rw.Flush()
		}
	}))
	defer up.Close()

	mw, err := sdk.NewMiddleware(ctx, e.client, sdk.WithoutRedirect(), sdk.WithPage(gateway.RenderPage))
	if err != nil {
		t.Fatal(err)
	}
	defer mw.Close()
	agent, err := sdk.LoadCertSource(e.agentCert, e.agentKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, pool := serverCert(t, e.dir, "ws.example.com")
	gw, err := gateway.New(gateway.Config{Perimeters: []gateway.Perimeter{{
		Name: "ws", Listen: "127.0.0.1:0", Hostnames: []string{"ws.example.com"},
		TLS: gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile}, Upstream: up.URL,
	}}}, mw, agent)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Listen(); err != nil {
		t.Fatal(err)
	}
	go gw.Serve()
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		gw.Shutdown(sctx)
	}()

	conn, err := tls.Dial("tcp", gw.Addrs()[0].String(), &tls.Config{RootCAs: pool, ServerName: "ws.example.com",
		Certificates: []tls.Certificate{alice.tls}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Mtls-Id: 0xspoofed\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade: %s\n%s", resp.Status, body)
	}
	if id := <-seen; id != hexSerial(alice) {
		t.Errorf("upstream saw X-Mtls-Id %q, want %s", id, hexSerial(alice))
	}
	io.WriteString(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo hello\n" {
		t.Fatalf("after the upgrade: %q %v", line, err)
	}
}
