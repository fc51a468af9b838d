package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// passthrough is a validated Passthrough, ready to serve.
type passthrough struct {
	cfg Passthrough
	log *slog.Logger

	upstreamFailed func(name, upstream string) // counts it in the metrics; set by streams.prepare
}

func newPassthrough(pc Passthrough, log *slog.Logger) *passthrough {
	return &passthrough{cfg: pc, log: log}
}

// route returns the route of a server name: an exact name first, then a
// wildcard; nil when none serves it.
func (p *passthrough) route(name string) *PassthroughRoute {
	for i := range p.cfg.Routes {
		for _, h := range p.cfg.Routes[i].Hostnames {
			if h == name {
				return &p.cfg.Routes[i]
			}
		}
	}
	for i := range p.cfg.Routes {
		for _, h := range p.cfg.Routes[i].Hostnames {
			if matchName(h, name) {
				return &p.cfg.Routes[i]
			}
		}
	}
	return nil
}

// serve handles one client connection: it reads the ClientHello (bounded
// in size and time), picks the route of its server name, dials the
// upstream, writes the PROXY header if the route asks for it, replays the
// hello and relays both ways. Anything else is closed without touching
// an upstream. It closes raw.
func (p *passthrough) serve(ctx context.Context, raw net.Conn) {
	defer raw.Close()
	start := time.Now()
	log := p.log.With("passthrough", p.cfg.Name, "remote", raw.RemoteAddr().String())
	_ = raw.SetReadDeadline(time.Now().Add(p.cfg.HelloTimeout))
	hello, name, err := readClientHello(raw, p.cfg.MaxHello)
	if err != nil {
		log.Warn("passthrough connection refused", "server_name", name, "reason", err.Error())
		return
	}
	r := p.route(name)
	if r == nil {
		log.Warn("passthrough connection refused", "server_name", name, "reason", "no route for this server name")
		return
	}
	_ = raw.SetReadDeadline(time.Time{})
	up, err := (&net.Dialer{Timeout: DefaultDialTimeout}).DialContext(ctx, "tcp", r.Upstream)
	if err != nil {
		if p.upstreamFailed != nil {
			p.upstreamFailed(p.cfg.Name, r.Upstream)
		}
		log.Error("upstream failed", "server_name", name, "upstream", r.Upstream, "err", err)
		return
	}
	defer up.Close()
	var first []byte
	if r.ProxyProtocol == ProxyProtocolV2 {
		first = appendProxyHeader(first, addrPort(raw.RemoteAddr()), addrPort(raw.LocalAddr()))
	}
	first = append(first, hello...)
	_ = up.SetWriteDeadline(time.Now().Add(p.cfg.HelloTimeout))
	if _, err := up.Write(first); err != nil {
		log.Error("upstream failed", "server_name", name, "upstream", r.Upstream, "err", err)
		return
	}
	log.Info("passthrough connection opened", "server_name", name, "upstream", r.Upstream)
	in, out, err := relay(raw, up, p.cfg.IdleTimeout)
	attrs := []any{"server_name", name, "bytes_in", in + int64(len(hello)), "bytes_out", out, "duration", time.Since(start).Round(time.Millisecond)}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		attrs = append(attrs, "end", err.Error())
	}
	log.Info("passthrough connection closed", attrs...)
}

// addrPort is a TCP address as a netip.AddrPort (invalid for others).
func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}
