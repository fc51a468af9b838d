// Package mtlsid holds the domain of the mtlsid identity service: the types
// every part shares (identities, certificates, tokens, audit entries), the
// Store interface that the storage back ends implement, and the Error type
// whose Kind the handlers map to wire outcomes.
//
// It imports only the standard library and does no I/O. Every other package
// of the module may import it; it imports none of them.
package mtlsid
