// Package revocation publishes certificate revocation: an OCSP responder
// (RFC 6960, GET and POST) and a CRL publisher that keeps the current
// signed CRL in memory and serves it.
//
// It imports the standard library, golang.org/x/crypto/ocsp and the root
// package mtlsid only. It does not import ca, authority or any store: it
// declares the few functions and methods it needs (a certificate lookup, a
// CRL signer, a store of revoked certificates), and package server wires
// them to the real ones. Package server imports it; nothing else should.
package revocation
