package selfapi

import (
	"context"
	"crypto/x509"
	"net/http"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// APICertAuthority issues and revokes services' API certificates, and the
// server certificate a service asks for with one of them. The people's
// methods check the actor's role in the service's organization;
// APICaller and ServiceIdentity act for the calling service only.
type APICertAuthority interface {
	IssueAPICert(ctx context.Context, actor *mtlsid.Certificate, req authority.APICertRequest) (*authority.Issued, error)
	APICerts(ctx context.Context, actor *mtlsid.Certificate, serviceID string) ([]mtlsid.Certificate, error)
	RevokeAPICert(ctx context.Context, actor *mtlsid.Certificate, serial string) error
	APICaller(ctx context.Context, peer *x509.Certificate) (*authority.APICaller, error)
	ServiceIdentity(ctx context.Context, caller *authority.APICaller, force bool) (*authority.Issued, error)
}

func (h *Handler) issueAPICert(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	svc, err := serviceID("service", a.Service, a.Org)
	if err != nil {
		return nil, err
	}
	var csr []byte
	if a.CSR != "" {
		csr = authority.DecodeCSR(a.CSR)
	}
	out, err := h.auth.IssueAPICert(ctx, c, authority.APICertRequest{ServiceID: svc, Name: a.AgentName, CSR: csr, Development: a.Development})
	if err != nil {
		return nil, err
	}
	cr, err := certResult(wire.OutcomeIssued, out)
	if err != nil {
		return nil, err
	}
	return wire.APICertResult{CertificateResult: cr, Service: svc, Development: out.Record.Development}, nil
}

func (h *Handler) listAPICerts(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	svc, err := serviceID("service", a.Service, a.Org)
	if err != nil {
		return nil, err
	}
	certs, err := h.auth.APICerts(ctx, c, svc)
	if err != nil {
		return nil, err
	}
	now := h.now()
	res := wire.APICertsResult{Outcome: wire.OutcomeOK, Service: svc, Certificates: []wire.APICertificate{}}
	for _, x := range certs {
		// The service's identity also holds its server certificates; they
		// are not API certificates.
		if x.Profile == mtlsid.ProfileServer {
			continue
		}
		res.Certificates = append(res.Certificates, wire.APICertificate{
			SerialNumber: x.Serial, Name: x.Name, Development: x.Development, Status: string(x.Status(now)),
			NotBefore: millis(x.NotBefore), NotAfter: millis(x.NotAfter), RevokedAt: millis(x.RevokedAt),
		})
	}
	return res, nil
}

func (h *Handler) revokeAPICert(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := required("serial-number", a.SerialNumber); err != nil {
		return nil, err
	}
	serial, err := mtlsid.NormalizeSerial(a.SerialNumber)
	if err != nil {
		return nil, err
	}
	if err := h.auth.RevokeAPICert(ctx, c, serial); err != nil {
		return nil, err
	}
	return wire.RevokeResult{Outcome: wire.OutcomeRevoked, SerialNumber: serial}, nil
}

// issueServiceCert answers issue_service_certificate, called with one of
// the service's API certificates: the server certificate for the service's
// verified domains, issued when forced, when none is current, when two
// thirds of its life have passed or when the domains changed.
func (h *Handler) issueServiceCert(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.apiCaller(ctx, r)
	if err != nil {
		return nil, err
	}
	out, err := h.auth.ServiceIdentity(ctx, c, a.ForceRenew)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return wire.ServiceCertResult{CertificateResult: wire.CertificateResult{Outcome: wire.OutcomeNotDue}, Service: c.Service.ID}, nil
	}
	cr, err := certResult(wire.OutcomeRenewed, out)
	if err != nil {
		return nil, err
	}
	return wire.ServiceCertResult{CertificateResult: cr, Service: c.Service.ID, DNSNames: out.Certificate.DNSNames}, nil
}
