// Package sdk is mtlsid's client library for Go programs: today the
// self-authority client that the CLI uses to enroll, renew, list and revoke.
// The Identity API client and net/http middleware follow (see the README).
//
// It imports the root package and wire types only, never a store or the
// CA, so services that import it stay small.
package sdk
