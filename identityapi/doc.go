// Package identityapi serves the Identity API, /v1, wire-compatible with
// the Identity Plus API: one wrapped JSON object in, one wrapped object
// out, kebab-case fields, and the reference's outcome strings. Callers are
// services, authenticated by their API certificate at the TLS layer.
//
// The wire types and outcomes stand alone in package wire so that sdk can
// import them; the handler declares the authority methods it calls.
// server assembles it.
package identityapi
