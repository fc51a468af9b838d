// Package agent keeps certificates on a machine fresh: the renewal engine
// that `mtlsid renew`, `mtlsid update` and the `mtlsid agent` daemon share.
// It renews a device or API certificate at two thirds of its life (plus
// a random jitter, so that a fleet does not renew at once), and a
// service's server certificate when the authority says it is due; it
// writes key, certificate, chain and PKCS#12 atomically, keeping the old
// files as .prev, and then runs a reload hook.
//
// It goes through sdk to reach the authority; cmd/mtlsid wires it.
package agent
