package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// admOrg is a running server with organization "acme": an administrator,
// a manager and a member, one person outside it, service "web.acme" with
// the role "editor" and an API certificate, and service "blog.acme" with an
// API certificate of its own.
type admOrg struct {
	*env
	admin, manager, member, outsider *device
	api, otherAPI                    *device
}

func newAdmOrg(t *testing.T, store mtlsid.Store) *admOrg {
	t.Helper()
	e := newEnv(t, store)
	o := &admOrg{env: e}
	o.admin = e.enroll("admin-laptop", mtlsid.TokenDevice)
	o.manager = e.enroll("manager-laptop", mtlsid.TokenDevice)
	o.member = e.enroll("member-laptop", mtlsid.TokenDevice)
	o.outsider = e.enroll("outsider-laptop", mtlsid.TokenDevice)
	ctx := context.Background()
	as, ok := o.as(o.admin), admOK{t}.ok
	ok(as.CreateOrg(ctx, "acme", "Acme", "ops@acme.example"))
	ok(as.AddMember(ctx, "acme", o.manager.serial, string(mtlsid.OrgManager)))
	ok(as.AddMember(ctx, "acme", o.member.serial, string(mtlsid.OrgMember)))
	ok(as.CreateService(ctx, "acme", "web"))
	ok(as.DefineRole(ctx, "web.acme", "", "editor"))
	ok(as.CreateService(ctx, "acme", "blog"))
	o.api = o.issueAPI("web.acme")
	o.otherAPI = o.issueAPI("blog.acme")
	return o
}

// issueAPI issues an API certificate of service, by the administrator.
func (o *admOrg) issueAPI(service string) *device {
	o.t.Helper()
	key, csr := newCSR(o.t, "api")
	res, err := o.as(o.admin).IssueAPICert(context.Background(), sdk.APICertRequest{Service: service, CSR: csr})
	if err != nil {
		o.t.Fatal(err)
	}
	return deviceFrom(o.t, key, &res.CertificateResult)
}

// as returns a self-authority client presenting d's certificate (nil: none).
func (o *admOrg) as(d *device) *sdk.SelfClient {
	if d == nil {
		return o.client(nil)
	}
	return o.client(&d.tls)
}

// admOK fails the test when a call that must succeed does not:
// admOK{t}.ok(client.Op(...)).
type admOK struct{ t testing.TB }

func (a admOK) ok(_ any, err error) {
	a.t.Helper()
	if err != nil {
		a.t.Fatal(err)
	}
}

// admCall sends {"operation","args"} as d and returns the status and the
// decoded envelope; args is marshalled as it is, so tests can send wrong
// types.
func (o *admOrg) admCall(d *device, op string, args any) (int, wire.Response) {
	o.t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		o.t.Fatal(err)
	}
	body, _ := json.Marshal(wire.Request{Operation: op, Args: raw})
	var cert *tls.Certificate
	if d != nil {
		cert = &d.tls
	}
	resp, err := o.httpClient(cert).Post(o.url+wire.Path, "application/json", bytes.NewReader(body))
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var r wire.Response
	if err := json.Unmarshal(data, &r); err != nil {
		o.t.Fatalf("%s: answer is not the API's JSON envelope: %q", op, data)
	}
	return resp.StatusCode, r
}

// admStatus returns the HTTP status and kind of an SDK error.
func admStatus(err error) (int, string) {
	var apiErr *sdk.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status, apiErr.Kind
	}
	return 0, ""
}

type obj = map[string]any

// TestAdminOperations walks every administrative operation's success path
// through the SDK: organizations, members, services, domains (verified by
// a real DNS record), roles, API certificates, the service's own server
// certificate, assist and device tokens.
func TestAdminOperations(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		o := newAdmOrg(t, open(t))
		ctx := context.Background()
		admin, manager, member := o.as(o.admin), o.as(o.manager), o.as(o.member)

		t.Run("organizations", func(t *testing.T) {
			res, err := o.as(o.outsider).CreateOrg(ctx, "beta", "", "")
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != wire.OutcomeCreated || res.Org != "beta" || res.Name != "beta" || res.Role != string(mtlsid.OrgAdministrator) || res.CreatedAt == 0 {
				t.Errorf("create_organization: %+v", res)
			}
			for d, want := range map[*device]string{o.admin: "org. administrator", o.manager: "org. manager", o.member: "member"} {
				orgs, err := o.as(d).Orgs(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(orgs.Organizations) != 1 || orgs.Organizations[0].Org != "acme" || orgs.Organizations[0].Role != want {
					t.Errorf("list_organizations of the %s: %+v", want, orgs)
				}
			}
			// A member is added by any of their serials, hex included.
			newcomer := o.enroll("newcomer", mtlsid.TokenDevice)
			m, err := admin.AddMember(ctx, "acme", mtlsid.HexSerial(newcomer.serial), "member")
			if err != nil {
				t.Fatal(err)
			}
			if m.SerialNumber != newcomer.serial || m.Role != "member" || m.Org != "acme" {
				t.Errorf("add_member: %+v", m)
			}
			if orgs, _ := o.as(newcomer).Orgs(ctx); len(orgs.Organizations) != 1 {
				t.Errorf("the newcomer's organizations: %+v", orgs)
			}
		})

		t.Run("services", func(t *testing.T) {
			res, err := manager.CreateService(ctx, "acme", "shop")
			if err != nil {
				t.Fatal(err)
			}
			if res.Service.Service != "shop.acme" || res.Name != "shop" || res.Org != "acme" || len(res.Domains) != 1 ||
				res.Domains[0].Domain != "shop.acme.mtls.test" || !res.Domains[0].Default || !res.Domains[0].Verified {
				t.Errorf("create_service: %+v", res)
			}
			if _, err := admin.CreateService(ctx, "acme", "api.acme"); err != nil {
				t.Errorf("create_service by full ID: %v", err)
			}
			list, err := member.Services(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, s := range list.Services {
				ids = append(ids, s.Service)
			}
			if !slices.Equal(ids, []string{"api.acme", "blog.acme", "shop.acme", "web.acme"}) {
				t.Errorf("list_services: %v", ids)
			}
		})

		t.Run("domains", func(t *testing.T) {
			add, err := manager.AddDomain(ctx, "web", "acme", "Shop.Example.com.")
			if err != nil {
				t.Fatal(err)
			}
			if add.Outcome != wire.OutcomePending || add.Domain.Domain != "shop.example.com" || add.Verified || add.Challenge == "" ||
				add.TXTName != "_mtlsid-challenge.shop.example.com" || add.TXTValue != add.Challenge ||
				add.HTTPURL != "http://shop.example.com/.well-known/mtlsid-challenge/"+add.Challenge {
				t.Fatalf("add_domain: %+v", add)
			}
			before := o.auditLen()
			if _, err := manager.VerifyDomain(ctx, "shop.example.com"); err == nil {
				t.Fatal("verified before the challenge was published")
			}
			if o.auditLen() != before {
				t.Error("a failed verification wrote to the audit log")
			}
			o.dns.setTXT(add.TXTName, add.TXTValue)
			v, err := manager.VerifyDomain(ctx, "shop.example.com")
			if err != nil {
				t.Fatal(err)
			}
			if v.Outcome != wire.OutcomeVerified || !v.Verified || v.Method != "dns" || v.VerifiedAt == 0 || v.Challenge != "" || v.TXTName != "" {
				t.Errorf("verify_domain: %+v", v)
			}
			list, err := member.Domains(ctx, "web.acme", "")
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Domains) != 2 || !list.Domains[0].Verified || !list.Domains[1].Verified {
				t.Errorf("list_domains: %+v", list)
			}
		})

		t.Run("roles", func(t *testing.T) {
			if r, err := manager.DefineRole(ctx, "web", "acme", "viewer"); err != nil || r.Outcome != wire.OutcomeDefined || r.Service != "web.acme" {
				t.Fatalf("define_role: %+v %v", r, err)
			}
			g, err := manager.GrantRole(ctx, "web", "acme", o.member.serial, "editor")
			if err != nil || g.Outcome != wire.OutcomeGranted || g.SerialNumber != o.member.serial {
				t.Fatalf("grant_role: %+v %v", g, err)
			}
			list, err := member.Roles(ctx, "web.acme", "")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(list.Roles, []string{"editor", "viewer"}) || len(list.Grants) != 1 || list.Grants[0].Role != "editor" || list.Grants[0].Identity == "" {
				t.Errorf("list_roles: %+v", list)
			}
			mine, err := member.ServiceRoles(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(mine.ServiceRoles) != 1 || mine.ServiceRoles[0].Service != "web.acme" || !slices.Equal(mine.ServiceRoles[0].Roles, []string{"editor"}) {
				t.Errorf("get_service_roles: %+v", mine)
			}
			// The service's own API certificate manages its roles too.
			if _, err := o.as(o.api).DefineRole(ctx, "web.acme", "", "robot"); err != nil {
				t.Errorf("define_role with the service's API certificate: %v", err)
			}
			if r, err := manager.RevokeRole(ctx, "web.acme", "", o.member.serial, "editor"); err != nil || r.Outcome != wire.OutcomeRevoked {
				t.Fatalf("revoke_role: %+v %v", r, err)
			}
			if mine, _ := member.ServiceRoles(ctx); len(mine.ServiceRoles) != 0 {
				t.Errorf("get_service_roles after revoke_role: %+v", mine)
			}
		})

		t.Run("api certificates", func(t *testing.T) {
			p12, err := admin.IssueAPICert(ctx, sdk.APICertRequest{Service: "web", Org: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			if p12.Outcome != wire.OutcomeIssued || p12.Name != "api" || p12.Service != "web.acme" || p12.P12 == "" || p12.Password == "" || p12.PrivateKey == "" || p12.Development {
				t.Errorf("issue_api_certificate without CSR: %+v", p12)
			}
			if _, err := tls.X509KeyPair(decodeB64(t, p12.Certificate), decodeB64(t, p12.PrivateKey)); err != nil {
				t.Errorf("generated key does not match: %v", err)
			}
			_, csr := newCSR(t, "billing")
			dev, err := admin.IssueAPICert(ctx, sdk.APICertRequest{Service: "web.acme", AgentName: "billing", CSR: csr, Development: true})
			if err != nil {
				t.Fatal(err)
			}
			if !dev.Development || dev.Name != "billing" || dev.PrivateKey != "" || dev.P12 != "" {
				t.Errorf("issue_api_certificate with CSR, development: %+v", dev)
			}
			if r, err := admin.RevokeAPICert(ctx, p12.SerialNumber); err != nil || r.SerialNumber != p12.SerialNumber {
				t.Fatalf("revoke_api_certificate: %+v %v", r, err)
			}
			list, err := member.APICerts(ctx, "web.acme", "")
			if err != nil {
				t.Fatal(err)
			}
			status := map[string]string{}
			for _, c := range list.Certificates {
				status[c.SerialNumber] = c.Status
				if c.Development != (c.SerialNumber == dev.SerialNumber) {
					t.Errorf("development flag of %s: %v", c.Name, c.Development)
				}
			}
			want := map[string]string{o.api.serial: "active", p12.SerialNumber: "revoked", dev.SerialNumber: "active"}
			if len(status) != 3 || status[o.api.serial] != want[o.api.serial] || status[p12.SerialNumber] != "revoked" || status[dev.SerialNumber] != "active" {
				t.Errorf("list_api_certificates: %v, want %v", status, want)
			}
		})

		t.Run("service certificate", func(t *testing.T) {
			api := o.as(o.api)
			first, err := api.ServiceCertificate(ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			if first.Outcome != wire.OutcomeRenewed || first.Service != "web.acme" || first.P12 == "" || first.Password == "" {
				t.Fatalf("issue_service_certificate: %+v", first)
			}
			pair, err := tls.X509KeyPair(decodeB64(t, first.Certificate), decodeB64(t, first.PrivateKey))
			if err != nil {
				t.Fatal(err)
			}
			names := slices.Sorted(slices.Values(pair.Leaf.DNSNames))
			if !slices.Equal(names, []string{"shop.example.com", "web.acme.mtls.test"}) || !slices.Equal(slices.Sorted(slices.Values(first.DNSNames)), names) {
				t.Errorf("server certificate names %v, result %v", names, first.DNSNames)
			}
			if _, err := pair.Leaf.Verify(x509.VerifyOptions{DNSName: "shop.example.com", Roots: o.roots, Intermediates: admPool(o.ca.Issuer()), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("server certificate does not verify: %v", err)
			}
			if again, err := api.ServiceCertificate(ctx, false); err != nil || again.Outcome != wire.OutcomeNotDue || again.Certificate != "" {
				t.Errorf("tentative renewal of a fresh certificate: %+v %v", again, err)
			}
			if forced, err := api.ServiceCertificate(ctx, true); err != nil || forced.Outcome != wire.OutcomeRenewed || forced.SerialNumber == first.SerialNumber {
				t.Errorf("forced renewal: %+v %v", forced, err)
			}
		})

		t.Run("assist", func(t *testing.T) {
			res, err := manager.Assist(ctx, "web", "acme")
			if err != nil {
				t.Fatal(err)
			}
			if res.ManagedService != "web.acme" || !strings.HasPrefix(res.Token, "mtid_") {
				t.Fatalf("assist: %+v", res)
			}
			if left := time.UnixMilli(res.ExpiresAt).Sub(o.now()); left <= 4*time.Minute || left > 5*time.Minute {
				t.Errorf("assist token valid for %v, want 5 minutes", left)
			}
			key, csr := newCSR(t, "worker")
			out, err := o.as(nil).Enroll(ctx, wire.Args{Authorization: res.Token, AgentName: "worker", CSR: csr})
			if err != nil {
				t.Fatal(err)
			}
			agent := deviceFrom(t, key, out)
			// The agent belongs to the service: it may ask for the service's
			// server certificate.
			if r, err := o.as(agent).ServiceCertificate(ctx, false); err != nil || r.Service != "web.acme" {
				t.Errorf("issue_service_certificate by the assisted agent: %+v %v", r, err)
			}
		})

		t.Run("device token", func(t *testing.T) {
			res, err := member.CreateToken(ctx, "phone", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != wire.OutcomeCreated || res.Purpose != "device" {
				t.Fatalf("create_token: %+v", res)
			}
			if left := time.UnixMilli(res.ExpiresAt).Sub(o.now()); left <= 59*time.Minute || left > time.Hour {
				t.Errorf("token valid for %v, want 1h", left)
			}
			key, csr := newCSR(t, "member-phone")
			out, err := o.as(nil).Enroll(ctx, wire.Args{Authorization: res.Token, AgentName: "member-phone", CSR: csr})
			if err != nil {
				t.Fatal(err)
			}
			phone := deviceFrom(t, key, out)
			devs, err := o.as(phone).Devices(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var serials []string
			for _, d := range devs.Identities {
				serials = append(serials, d.SerialNumber)
			}
			if len(serials) != 2 || !slices.Contains(serials, o.member.serial) {
				t.Errorf("the new device did not join the member's identity: %v", serials)
			}
			// And it acts as the member: it sees the organization.
			if orgs, _ := o.as(phone).Orgs(ctx); len(orgs.Organizations) != 1 || orgs.Organizations[0].Role != "member" {
				t.Errorf("the new device's organizations: %+v", orgs)
			}
		})

		t.Run("revoked API certificate", func(t *testing.T) {
			if _, err := admin.RevokeAPICert(ctx, o.api.serial); err != nil {
				t.Fatal(err)
			}
			_, err := o.as(o.api).ServiceCertificate(ctx, true)
			if status, kind := admStatus(err); status != http.StatusUnauthorized || kind != string(mtlsid.KindUnauthorized) {
				t.Errorf("call with a revoked API certificate: %d %s (%v)", status, kind, err)
			}
		})
	})
}

func admPool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// TestAdminRefusals checks that every administrative operation refuses,
// with 403 and without writing anything, an organization member whose role
// is too weak, a person outside the organization, and another service's
// API certificate. A service's own API certificate manages that service
// (roles, domains, assist) but is never an administrator, nor a member of
// the organization.
func TestAdminRefusals(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		o := newAdmOrg(t, open(t))
		ctx := context.Background()
		if _, err := o.as(o.manager).GrantRole(ctx, "web.acme", "", o.member.serial, "editor"); err != nil {
			t.Fatal(err)
		}
		dom, err := o.as(o.manager).AddDomain(ctx, "web.acme", "", "shop.example.com")
		if err != nil {
			t.Fatal(err)
		}
		// Published, so that only the role stands between the member and
		// a verified domain.
		o.dns.setTXT(dom.TXTName, dom.TXTValue)
		cases := []struct {
			op   string
			args obj
			weak []*device // members whose role is too weak
		}{
			{wire.OpAddMember, obj{"org": "acme", "serial-number": o.outsider.serial, "role": "org. administrator"}, []*device{o.manager, o.member, o.api}},
			{wire.OpCreateService, obj{"org": "acme", "service": "api"}, []*device{o.member, o.api}},
			{wire.OpListServices, obj{"org": "acme"}, []*device{o.api}},
			{wire.OpAddDomain, obj{"service": "web.acme", "domain": "blog.example.com"}, []*device{o.member}},
			{wire.OpVerifyDomain, obj{"domain": "shop.example.com"}, []*device{o.member}},
			{wire.OpListDomains, obj{"service": "web", "org": "acme"}, nil},
			{wire.OpDefineRole, obj{"service": "web.acme", "role": "viewer"}, []*device{o.member}},
			{wire.OpGrantRole, obj{"service": "web.acme", "serial-number": o.outsider.serial, "role": "editor"}, []*device{o.member}},
			{wire.OpRevokeRole, obj{"service": "web.acme", "serial-number": o.member.serial, "role": "editor"}, []*device{o.member}},
			{wire.OpListRoles, obj{"service": "web.acme"}, nil},
			{wire.OpIssueAPICertificate, obj{"service": "web.acme", "development": true}, []*device{o.manager, o.member, o.api}},
			{wire.OpListAPICertificates, obj{"service": "web.acme"}, nil},
			{wire.OpRevokeAPICertificate, obj{"serial-number": o.api.serial}, []*device{o.manager, o.member, o.api}},
			{wire.OpAssist, obj{"managed-service": "web.acme"}, []*device{o.member}},
		}
		for _, c := range cases {
			t.Run(c.op, func(t *testing.T) {
				who := map[*device]string{o.manager: "manager", o.member: "member", o.outsider: "outsider", o.api: "service's API certificate", o.otherAPI: "other service's API certificate"}
				for _, d := range append(c.weak, o.outsider, o.otherAPI) {
					before := o.auditLen()
					status, res := o.admCall(d, c.op, c.args)
					if status != http.StatusForbidden || res.Kind != string(mtlsid.KindForbidden) || res.Result != nil {
						t.Errorf("%s as the %s: %d %+v, want 403 forbidden", c.op, who[d], status, res)
					}
					if after := o.auditLen(); after != before {
						t.Errorf("%s as the %s wrote %d audit entries", c.op, who[d], after-before)
					}
				}
			})
		}
		// What changes nothing visible still did not happen: the refused
		// verification left the domain pending, the grant in place.
		if ds, _ := o.as(o.admin).Domains(ctx, "web.acme", ""); len(ds.Domains) != 2 || ds.Domains[0].Verified == ds.Domains[1].Verified {
			t.Errorf("domains after refusals: %+v", ds.Domains)
		}
		if rs, _ := o.as(o.member).ServiceRoles(ctx); len(rs.ServiceRoles) != 1 {
			t.Errorf("roles after refusals: %+v", rs)
		}

		// Operations that are not about an organization refuse the wrong
		// kind of certificate.
		for _, c := range []struct {
			op   string
			args obj
			d    *device
			who  string
		}{
			{wire.OpCreateOrganization, obj{"org": "svc-org"}, o.api, "an API certificate"},
			{wire.OpCreateToken, obj{"purpose": "device"}, o.api, "an API certificate"},
			{wire.OpIssueServiceCertificate, obj{"force-renew": true}, o.admin, "a person's certificate"},
		} {
			before := o.auditLen()
			status, res := o.admCall(c.d, c.op, c.args)
			if status != http.StatusForbidden || res.Kind != string(mtlsid.KindForbidden) {
				t.Errorf("%s with %s: %d %+v, want 403", c.op, c.who, status, res)
			}
			if after := o.auditLen(); after != before {
				t.Errorf("%s with %s wrote %d audit entries", c.op, c.who, after-before)
			}
		}
	})
}

// TestAdminNeedsCertificate checks that every operation but enroll answers
// 401 without a client certificate, before looking at its arguments.
func TestAdminNeedsCertificate(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		o := newAdmOrg(t, open(t))
		before := o.auditLen()
		for _, op := range []string{
			wire.OpCreateOrganization, wire.OpListOrganizations, wire.OpAddMember, wire.OpCreateService, wire.OpListServices,
			wire.OpAddDomain, wire.OpVerifyDomain, wire.OpListDomains, wire.OpDefineRole, wire.OpGrantRole, wire.OpRevokeRole,
			wire.OpListRoles, wire.OpIssueAPICertificate, wire.OpListAPICertificates, wire.OpRevokeAPICertificate,
			wire.OpAssist, wire.OpCreateToken, wire.OpIssueServiceCertificate, wire.OpGetServiceRoles,
		} {
			status, res := o.admCall(nil, op, obj{"org": "acme", "service": "web.acme", "serial-number": o.admin.serial})
			if status != http.StatusUnauthorized || res.Kind != string(mtlsid.KindUnauthorized) {
				t.Errorf("%s without a certificate: %d %+v", op, status, res)
			}
		}
		if after := o.auditLen(); after != before {
			t.Errorf("unauthenticated calls wrote %d audit entries", after-before)
		}
	})
}

// TestAdminBadInput sends malformed arguments as the organization's
// administrator, who may do everything: each is a 400 naming the problem,
// and nothing is written.
func TestAdminBadInput(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		o := newAdmOrg(t, open(t))
		cases := []struct {
			name string
			op   string
			args any
			want string // in the error message
		}{
			{"args not an object", wire.OpListOrganizations, []int{1}, "must be a JSON object"},
			{"org missing", wire.OpCreateOrganization, obj{}, "org is required"},
			{"org not a slug", wire.OpCreateOrganization, obj{"org": "Big Corp"}, "lower-case"},
			{"org too long", wire.OpCreateOrganization, obj{"org": strings.Repeat("a", 33)}, "lower-case"},
			{"org a number", wire.OpCreateOrganization, obj{"org": 42}, `"org" must be a string`},
			{"e-mail not an address", wire.OpCreateOrganization, obj{"org": "beta", "email": "nobody"}, "not an address"},
			{"member role missing", wire.OpAddMember, obj{"org": "acme", "serial-number": o.outsider.serial}, "role is required"},
			{"member role unknown", wire.OpAddMember, obj{"org": "acme", "serial-number": o.outsider.serial, "role": "boss"}, "unknown organization role"},
			{"member serial not a number", wire.OpAddMember, obj{"org": "acme", "serial-number": "abc", "role": "member"}, "not a"},
			{"service missing", wire.OpCreateService, obj{"org": "acme"}, "service is required"},
			{"service not a slug", wire.OpCreateService, obj{"org": "acme", "service": "Web_1"}, "lower-case"},
			{"service in another org", wire.OpCreateService, obj{"org": "acme", "service": "web.other"}, "not in organization"},
			{"services without org", wire.OpListServices, obj{}, "org is required"},
			{"service name without org", wire.OpListDomains, obj{"service": "web"}, "needs org"},
			{"service ID with bad slug", wire.OpListRoles, obj{"service": "web.ACME"}, "lower-case"},
			{"service ID of three parts", wire.OpListAPICertificates, obj{"service": "a.b.c"}, "lower-case"},
			{"domain missing", wire.OpAddDomain, obj{"service": "web.acme"}, "domain is required"},
			{"domain malformed", wire.OpAddDomain, obj{"service": "web.acme", "domain": "not a domain"}, "invalid domain"},
			{"domain single label", wire.OpAddDomain, obj{"service": "web.acme", "domain": "intranet"}, "need at least two labels"},
			{"verify without domain", wire.OpVerifyDomain, obj{}, "domain is required"},
			{"role missing", wire.OpDefineRole, obj{"service": "web.acme"}, "role is required"},
			{"role a list", wire.OpDefineRole, obj{"service": "web.acme", "role": []string{"x"}}, `"role" must be a string`},
			{"role too long", wire.OpDefineRole, obj{"service": "web.acme", "role": strings.Repeat("r", 65)}, "printable"},
			{"grant undefined role", wire.OpGrantRole, obj{"service": "web.acme", "serial-number": o.member.serial, "role": "owner"}, "defines no role"},
			{"grant without serial", wire.OpGrantRole, obj{"service": "web.acme", "role": "editor"}, "serial-number is required"},
			{"development not a boolean", wire.OpIssueAPICertificate, obj{"service": "web.acme", "development": "yes"}, `"development" must be a boolean`},
			{"CSR garbage", wire.OpIssueAPICertificate, obj{"service": "web.acme", "csr": "bm90IGEgQ1NS"}, "CSR"},
			{"revoke without serial", wire.OpRevokeAPICertificate, obj{}, "serial-number is required"},
			{"assist without service", wire.OpAssist, obj{}, "managed-service is required"},
			{"token for an agent", wire.OpCreateToken, obj{"purpose": "agent"}, "assist"},
			{"token purpose unknown", wire.OpCreateToken, obj{"purpose": "robot"}, "unknown token purpose"},
			{"token ttl negative", wire.OpCreateToken, obj{"ttl": -5}, "out of range"},
			{"token ttl too long", wire.OpCreateToken, obj{"ttl": 1 << 62}, "out of range"},
			{"token ttl a string", wire.OpCreateToken, obj{"ttl": "1h"}, `"ttl" must be a number`},
			{"force-renew a string", wire.OpIssueServiceCertificate, obj{"force-renew": "yes"}, `"force-renew" must be a boolean`},
		}
		// A person's certificate is no API certificate: refused like an
		// unknown serial, so the answer does not tell which serials exist.
		before := o.auditLen()
		if status, res := o.admCall(o.admin, wire.OpRevokeAPICertificate, obj{"serial-number": o.member.serial}); status != http.StatusForbidden || !strings.Contains(res.Error, "not an API certificate") {
			t.Errorf("revoking a person's certificate as an API certificate: %d %+v", status, res)
		}
		if o.auditLen() != before {
			t.Errorf("refused revocation wrote to the audit log")
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := o.auditLen()
				status, res := o.admCall(o.admin, c.op, c.args)
				if status != http.StatusBadRequest || res.Kind != string(mtlsid.KindInvalid) || !strings.Contains(res.Error, c.want) {
					t.Errorf("%s %v: %d %+v, want 400 with %q", c.op, c.args, status, res, c.want)
				}
				if after := o.auditLen(); after != before {
					t.Errorf("wrote %d audit entries", after-before)
				}
			})
		}
	})
}
