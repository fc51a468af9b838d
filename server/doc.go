// Package server assembles `mtlsid serve`: the HTTPS listener and its TLS
// configuration (a serving certificate from the authority's own CA, renewed
// by itself; client certificates requested and verified against the CA),
// the routes, metrics, health checks and background jobs. Any number of
// servers may share one PostgreSQL database (a fleet): the CRL and the
// pages' form key are kept there, and the jobs that must run once (the
// CRL) run on the node holding their lease.
//
// Only cmd/mtlsid and tests import it.
package server
