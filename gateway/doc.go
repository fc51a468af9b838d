// Package gateway is mtlsid's mTLS reverse proxy: HTTP perimeters that
// end TLS, ask for (or require) a client certificate issued by the
// authority, identify it through the sdk middleware (cached, following
// revocations), enforce per-path rules or only forward the identity, and
// proxy to an upstream. Identity headers sent by clients are always
// removed before the gateway adds its own. See docs/gateway.md.
//
// Only cmd/mtlsid imports it. It talks to the authority through sdk only.
package gateway
