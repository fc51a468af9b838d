// Package selfapi serves the self-authority API at /api/v1: one POST
// endpoint taking {"operation","args"} and answering {"error","result"},
// field for field as the reference's clients expect, so that they enroll
// and renew unchanged. Beside the reference's operations (enroll,
// renew_certificate, get_active_identities, assist,
// issue_service_certificate, get_service_roles) it carries the
// administrative ones the pages offer (organizations, services, domains,
// roles, API certificates, tokens), so that everything can be scripted.
//
// Every operation but enroll authenticates the caller by its client
// certificate; the authority's methods decide what the caller may do (its
// role in the organization). The handler only checks that arguments are
// present and well formed, and maps error kinds to HTTP statuses.
//
// The wire types (Request, Response, Args, results) stand alone in
// package wire so clients can share them; the handler declares the
// authority methods it calls, one small interface per area. server
// assembles it; sdk uses the wire types.
package selfapi
