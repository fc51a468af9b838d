// Package domainverify proves that whoever registers a service controls the
// DNS name it claims, before mtlsid issues server certificates for that name.
//
// The service publishes a challenge token made by NewChallenge in one of two
// ways, and a Verifier checks it:
//
//   - DNS: a TXT record at RecordName(domain), "_mtlsid-challenge.<domain>",
//     whose value is the token. Any TXT record at that name may hold it; the
//     character-strings of one record are joined before comparing, so a
//     value split into several strings still counts.
//   - HTTP: the file http://<domain>/.well-known/mtlsid-challenge/<token>
//     (WellKnownPath), answering 200 with the token as its body; surrounding
//     white space is ignored. Plain HTTP on port 80 only, no proxy, and no
//     redirects are followed.
//
// Verify tries DNS first, then HTTP, and fails closed: control is proven only
// when one of the two answers with the exact token. Its errors are
// *mtlsid.Error values: KindInvalid for a malformed domain or token (caught
// before any network I/O), KindForbidden when a check got an answer that is
// not the proof, and KindUnavailable when no check could get an answer at all
// (resolver down, time-out), so the caller may retry.
//
// The package imports only the standard library and the root package mtlsid,
// and holds no policy about which service may claim which name: that is the
// authority's job. Package authority (or server wiring) may import it;
// handler packages should declare the one method they need instead.
package domainverify
