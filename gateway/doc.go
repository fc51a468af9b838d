// Package gateway is mtlsid's mTLS reverse proxy: HTTP perimeters that
// end TLS, ask for (or require) a client certificate issued by the
// authority, identify it through the sdk middleware (cached, following
// revocations), enforce per-path rules or only forward the identity, and
// proxy to an upstream. Identity headers sent by clients are always
// removed before the gateway adds its own. Reload swaps the whole
// configuration for new requests and handshakes without dropping a
// connection (reload.go); an admin listener serves the status page and
// Prometheus metrics (admin.go, status.go, metrics.go). TCP perimeters
// end TLS, identify and check roles before relaying plain bytes (tcp.go);
// pass-through listeners route by the ClientHello's server name without
// ending TLS, optionally after a PROXY v2 header (passthrough.go, sni.go,
// proxyproto.go). See docs/gateway.md.
//
// Only cmd/mtlsid imports it. It talks to the authority through sdk only.
package gateway
