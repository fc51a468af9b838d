// Package server assembles `mtlsid serve`: the HTTPS listener and its TLS
// configuration (a serving certificate from the authority's own CA, renewed
// by itself; client certificates requested and verified against the CA),
// the routes, metrics, health checks and background jobs.
//
// Only cmd/mtlsid and tests import it.
package server
