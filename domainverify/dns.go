package domainverify

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/mtlsid/mtlsid"
)

// VerifyDNS checks only the DNS method: that some TXT record at
// RecordName(domain) has token as its value (the character-strings of each
// record joined, compared exactly). It returns nil if so. Otherwise the error
// is KindInvalid for bad input (no I/O), KindForbidden if the resolver
// answered without the proof (no such name, no TXT record, only other
// values), or KindUnavailable if it could not get an answer (server failure,
// refused, time-out), which is worth retrying. The lookup takes at most
// Config.Timeout.
func (v *Verifier) VerifyDNS(ctx context.Context, domain, token string) error {
	if err := checkInput(domain, token); err != nil {
		return err
	}
	return v.done(ctx, MethodDNS, domain, token, v.checkDNS(ctx, domain, token))
}

func (v *Verifier) checkDNS(ctx context.Context, domain, token string) error {
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	name := RecordName(domain)
	// The trailing dot makes the name absolute, so the resolver never
	// tries it under a search domain from resolv.conf.
	txts, err := v.resolver.LookupTXT(ctx, name+".")
	if err != nil {
		v.nameServer(err)
		if dnsErr, ok := errors.AsType[*net.DNSError](err); ok && dnsErr.IsNotFound {
			return &mtlsid.Error{Kind: mtlsid.KindForbidden, Message: fmt.Sprintf("no TXT record %s", name), Err: err}
		}
		why := "resolver failed"
		if dnsErr, ok := errors.AsType[*net.DNSError](err); ok && dnsErr.IsTimeout {
			why = "resolver timed out"
		}
		return &mtlsid.Error{Kind: mtlsid.KindUnavailable, Message: fmt.Sprintf("could not look up TXT %s: %s; try again later", name, why), Err: err}
	}
	for _, t := range txts {
		if t == token {
			return nil
		}
	}
	if len(txts) == 0 {
		return mtlsid.Errorf(mtlsid.KindForbidden, "no TXT record %s", name)
	}
	return mtlsid.Errorf(mtlsid.KindForbidden, "no TXT record %s with the challenge; found %s", name, plural(len(txts), "other record"))
}

// nameServer puts the configured Resolver into a lookup error's Server
// field, which otherwise names a server from resolv.conf that was never
// asked, since Config.Resolver replaces the resolver's dialing.
func (v *Verifier) nameServer(err error) {
	if dnsErr, ok := errors.AsType[*net.DNSError](err); ok && v.server != "" {
		dnsErr.Server = v.server
	}
}

// plural returns "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
