package server_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/identityapi/wire"
)

// TestIdentityAPIObjects covers the objects the tour does not: Trust,
// User-Secret, intrusions, the bind intent, the service's own
// certificates and revocation.
func TestIdentityAPIObjects(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		admin := e.enroll("admin", mtlsid.TokenDevice)
		svc := e.org(admin, "acme", "shop")
		api := e.apiCert(admin, svc.ID, false)
		bob := e.enroll("bob", mtlsid.TokenDevice)
		profile := func(r interface{ Decode(any) error }) wire.IdentityProfile {
			var p wire.IdentityProfile
			if err := r.Decode(&p); err != nil {
				t.Fatal(err)
			}
			return p
		}

		// Bind intent: the sign-on page binds the local user it names.
		r := e.call(api, http.MethodPut, wire.ObjIntent, wire.Intent{Type: "bind", LocalUserName: "bob@shop", ReturnURL: "https://shop.acme.mtls.test/"})
		var ref wire.IntentReference
		_ = r.Decode(&ref)
		e.signon(bob, ref.Value)
		r, p := e.inquire(api, bob.serial)
		if r.Outcome() != wire.OK0002 || p.LocalUserName != "bob@shop" {
			t.Fatalf("after a bind intent: %s %s", r.Outcome(), r.Body)
		}

		// A bind intent naming an account another identity holds is refused
		// on the sign-on page, before the consent question and before
		// anything is written.
		carol := e.enroll("carol", mtlsid.TokenDevice)
		r = e.call(api, http.MethodPut, wire.ObjIntent, wire.Intent{Type: "bind", LocalUserName: "bob@shop", ReturnURL: "https://shop.acme.mtls.test/"})
		_ = r.Decode(&ref)
		before := e.auditLen()
		hc := e.browser(carol)
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := hc.Get(e.url + "/signon/" + ref.Value)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(page), "linked to another identity") {
			t.Errorf("bind of a taken name on the sign-on page: %s\n%s", resp.Status, page)
		}
		if after := e.auditLen(); after != before {
			t.Errorf("the refused bind wrote %d audit entries", after-before)
		}
		if r, _ := e.inquire(api, carol.serial); r.Outcome() != wire.PB0003 {
			t.Errorf("carol after the refused bind: %s (want PB 0003: no consent recorded)", r.Outcome())
		}
		if r, p := e.inquire(api, bob.serial); p.LocalUserName != "bob@shop" {
			t.Errorf("bob after carol's refused bind: %s %s", r.Outcome(), r.Body)
		}

		// Trust by local user: 100 tokens on top of nothing gives score 3.
		r = e.call(api, http.MethodPut, wire.ObjTrust, wire.Trust{LocalUserName: "bob@shop", TokensOfTrust: 100})
		if p := profile(r); r.Object != wire.ObjIdentityProfile || p.LocalTrust != 100 || p.TrustScore != 3 || len(p.TrustSponsors) != 1 {
			t.Fatalf("trust: %s %s", r.Object, r.Body)
		}
		if r := e.call(api, http.MethodPut, wire.ObjTrust, wire.Trust{LocalUserName: "bob@shop", TokensOfTrust: 3000}); r.Outcome() != wire.ER0008 {
			t.Errorf("trust over the per-call limit: %s", r.Outcome())
		}
		if r := e.call(api, http.MethodPut, wire.ObjTrust, wire.Trust{LocalUserName: "nobody"}); r.Outcome() != wire.ER0010 {
			t.Errorf("trust for an unbound user: %s", r.Outcome())
		}

		// User-Secret, read back in the profile.
		r = e.call(api, http.MethodPut, wire.ObjUserSecret, wire.UserSecret{LocalUserName: "bob@shop", Secret: "s3cr3t"})
		if p := profile(r); p.UserSecret != "s3cr3t" {
			t.Fatalf("user secret: %s", r.Body)
		}
		if _, p := e.inquire(api, bob.serial); p.UserSecret != "s3cr3t" {
			t.Errorf("inquiry lacks the user secret")
		}

		// Intrusion report, duplicate, the PB 0005 standing, withdrawal.
		r = e.call(api, http.MethodPut, wire.ObjIntrusionReport, wire.IntrusionReport{IntrudingCertificateUID: bob.serial, Severity: "intrusive", Message: "spam", IntrudingRequestHeaders: []string{"User-Agent = x"}})
		var num wire.ReferenceNumber
		if r.Object != wire.ObjReferenceNumber || r.Decode(&num) != nil || num.Value == "" {
			t.Fatalf("intrusion report: %s %s", r.Object, r.Body)
		}
		if r := e.call(api, http.MethodPut, wire.ObjIntrusionReport, wire.IntrusionReport{IntrudingCertificateUID: bob.serial}); r.Outcome() != wire.ER0007 {
			t.Errorf("second report: %s", r.Outcome())
		}
		if r, _ := e.inquire(api, bob.serial); r.Outcome() != wire.PB0005 {
			t.Errorf("reported certificate: %s", r.Outcome())
		}
		if r := e.call(api, http.MethodDelete, wire.ObjIntrusionReference, wire.IntrusionReference(num)); r.Outcome() != wire.OK0000 {
			t.Errorf("withdraw: %s", r.Body)
		}
		if r, _ := e.inquire(api, bob.serial); r.Outcome() != wire.OK0002 {
			t.Errorf("after withdrawal: %s", r.Outcome())
		}

		// Unbind, then unbind again.
		if r := e.call(api, http.MethodDelete, wire.ObjLocalUserReference, wire.LocalUserReference{LocalUserName: "bob@shop"}); r.Outcome() != wire.OK0101 {
			t.Errorf("unbind: %s", r.Body)
		}
		if r, _ := e.inquire(api, bob.serial); r.Outcome() != wire.OK0001 {
			t.Errorf("after unbind: %s", r.Outcome())
		}

		// The service's server certificate for its verified domains.
		r = e.call(api, http.MethodPut, wire.ObjServiceIdentityRequest, wire.ServiceIdentityRequest{})
		var si wire.ServiceIdentity
		if r.Object != wire.ObjServiceIdentity || r.Decode(&si) != nil {
			t.Fatalf("service identity: %s %s", r.Object, r.Body)
		}
		p12, _ := base64.StdEncoding.DecodeString(si.P12)
		_, cert, _, err := pkcs12.DecodeChain(p12, si.Password)
		if err != nil || cert.VerifyHostname("shop.acme.mtls.test") != nil || cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
			t.Fatalf("server certificate: %v %v", err, cert.DNSNames)
		}
		if r := e.call(api, http.MethodPut, wire.ObjServiceIdentityRequest, wire.ServiceIdentityRequest{}); r.Outcome() != wire.OK0000 || r.Object != wire.ObjSimpleResponse {
			t.Errorf("second request without force: %s %s", r.Object, r.Body)
		}
		if r := e.call(api, http.MethodPut, wire.ObjServiceIdentityRequest, wire.ServiceIdentityRequest{ForceRenewal: true}); r.Object != wire.ObjServiceIdentity {
			t.Errorf("forced renewal: %s", r.Body)
		}
		// A newly verified domain makes the certificate due again.
		d, err := e.auth.AddDomain(ctx, e.record(admin), svc.ID, "shop.example.org")
		if err != nil {
			t.Fatal(err)
		}
		e.dns.setTXT("_mtlsid-challenge.shop.example.org", d.Challenge)
		if _, err := e.auth.VerifyDomain(ctx, e.record(admin), d.Name); err != nil {
			t.Fatal(err)
		}
		r = e.call(api, http.MethodPut, wire.ObjServiceIdentityRequest, wire.ServiceIdentityRequest{})
		_ = r.Decode(&si)
		certPEM, _ := base64.StdEncoding.DecodeString(si.Certificate)
		block, _ := pem.Decode(certPEM)
		if block == nil {
			t.Fatalf("after a new domain: %s", r.Body)
		}
		c, _ := x509.ParseCertificate(block.Bytes)
		if c == nil || c.VerifyHostname("shop.example.org") != nil {
			t.Errorf("the new domain is not in the new certificate")
		}

		// A new agent certificate; the old one of that name is retired.
		old := e.apiCert(admin, svc.ID, false) // named "api", like api
		r = e.call(api, http.MethodPut, wire.ObjServiceAgentRequest, wire.ServiceAgentIdentityRequest{AgentName: "api"})
		if r.Object != wire.ObjServiceAgentIdentity {
			t.Fatalf("agent identity: %s", r.Body)
		}
		if r := e.call(old, http.MethodPut, "", nil); r.Outcome() != wire.ER1103 {
			t.Errorf("superseded agent certificate: %s", r.Outcome())
		}
		if r := e.call(api, http.MethodPut, "", nil); r.Outcome() != wire.OK0000 {
			t.Errorf("the calling certificate must survive: %s", r.Outcome())
		}

		// Identity-Revocation-Request: only the service's own.
		if r := e.call(api, http.MethodPut, wire.ObjIdentityRevocation, wire.IdentityRevocationRequest{SerialNumber: bob.serial}); r.Outcome() != wire.ER0009 {
			t.Errorf("revoking someone else's certificate: %s", r.Body)
		}
		other := e.apiCert(admin, svc.ID, false)
		if r := e.call(api, http.MethodPut, wire.ObjIdentityRevocation, wire.IdentityRevocationRequest{SerialNumber: other.serial}); r.Outcome() != wire.OK0000 {
			t.Errorf("revoking its own: %s", r.Body)
		}
		if r, _ := e.inquire(api, other.serial); r.Outcome() != wire.PB0004 {
			t.Errorf("revoked certificate: %s", r.Outcome())
		}
		if !strings.Contains(e.crlText(), other.serial) {
			t.Errorf("CRL lacks the revoked API certificate")
		}
	})
}

// crlText lists the CRL's serials, decimal, one a line.
func (e *env) crlText() string {
	var b strings.Builder
	for _, r := range e.crl().RevokedCertificateEntries {
		b.WriteString(r.SerialNumber.String() + "\n")
	}
	return b.String()
}
