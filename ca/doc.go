// Package ca is mtlsid's certificate authority: it makes and keeps the root
// and issuing CA on disk (keys encrypted at rest with a passphrase), checks
// certificate signing requests, issues certificates by profile (device,
// agent, server), signs CRLs, and packs keys and certificates into PKCS#12
// files for browsers.
//
// It imports only the standard library, golang.org/x/crypto,
// go-pkcs12 and the root package mtlsid, and holds no policy about who may
// get a certificate: that is the authority's job. Package authority imports
// it, and cmd/mtlsid for `mtlsid ca init`; handler packages (revocation,
// identityapi, web) must not, and declare the few functions they need
// instead.
//
// A CA directory holds root.crt, root.key, issuer.crt and issuer.key (PEM;
// directory 0700, keys 0600). Load reads only the issuer key, so root.key
// may be moved offline after Init. Keys encrypted with a passphrase are
// "MTLSID ENCRYPTED PRIVATE KEY" blocks: PKCS#8 sealed with AES-256-GCM
// under a key that scrypt derives from the passphrase, with the scrypt
// parameters, salt and nonce in the PEM headers.
//
// A *CA is immutable once made and safe for concurrent use.
package ca
