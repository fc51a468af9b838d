// Package sdk is mtlsid's library for Go services: the Identity API client
// (IdentityClient, every /v1 object as a typed call, errors carrying the
// outcome), the self-authority client (SelfClient), net/http middleware
// that identifies visitors by certificate, trusted proxy headers or the
// sign-on redirect (Middleware), and the renewal of the service's own API
// certificate (Renewer). See docs/sdk.md.
//
// Any program may import it. It imports the root package and the wire
// types only, never a store, the CA or the server, so services that import
// it stay small (deps_test.go pins this).
package sdk
