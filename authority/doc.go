// Package authority holds mtlsid's use cases: minting enrollment tokens,
// enrolling devices and agents, renewing and revoking certificates,
// authenticating callers by their client certificate, issuing the
// authority's own serving certificate, and verifying the audit chain.
//
// Each use case is one Store transaction. Issuance goes through a group
// committer that writes concurrent issuances in one transaction, and
// answers each caller only once its certificate is committed.
//
// Handler packages (selfapi, server) and cmd/mtlsid import it; it imports
// the root package and ca, never a concrete store.
package authority
