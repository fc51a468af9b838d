package authority

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
)

// IssueServerCertificate makes a key and a server certificate for the
// authority's own host names (DNS names and IP addresses), records it in
// the store under the authority's identity, and returns both. Lifetime
// zero means the server profile's default.
func (a *Authority) IssueServerCertificate(ctx context.Context, hostnames []string, lifetime time.Duration) (*Issued, error) {
	if len(hostnames) == 0 {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "a server certificate needs at least one host name")
	}
	var dns, ips []string
	for _, h := range hostnames {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip.String())
			continue
		}
		if !validHostname(h) {
			return nil, mtlsid.Errorf(mtlsid.KindInvalid, "%q is not a valid host name", h)
		}
		dns = append(dns, strings.ToLower(h))
	}
	_, key, err := a.subjectKey(nil)
	if err != nil {
		return nil, err
	}
	now := a.clock()
	out, err := a.sign(ctx, signing{
		at: now, profile: mtlsid.ProfileServer, identityID: mtlsid.AuthorityIdentityID,
		name: hostnames[0], deviceType: mtlsid.DeviceServer, dnsNames: dns, ips: ips,
		pub: key.Public(), key: key, lifetime: lifetime,
		identity:  &mtlsid.Identity{ID: mtlsid.AuthorityIdentityID, Kind: mtlsid.KindAuthority, Name: "mtlsid authority", CreatedAt: now},
		actor:     "system",
		auditType: mtlsid.AuditServerCertIssued,
	})
	if err != nil {
		return nil, err
	}
	a.log.Info("server certificate issued", "serial", out.Record.Serial, "names", hostnames, "not_after", out.Record.NotAfter)
	return out, nil
}

// validHostname accepts DNS names of letters, digits and hyphens, with an
// optional leading "*." wildcard label.
func validHostname(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
