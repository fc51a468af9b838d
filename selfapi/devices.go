package selfapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// The operations on a caller's own certificates: enroll, renew_certificate,
// get_active_identities and revoke.

func (h *Handler) enroll(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	ip := clientIP(r)
	if h.limiter != nil && !h.limiter.ok(ip) {
		return nil, mtlsid.Errorf(mtlsid.KindRateLimited, "too many failed enrollments from this address; wait a minute")
	}
	name := a.AgentName
	if name == "" {
		name = a.Device
	}
	var csr []byte
	if a.CSR != "" {
		csr = authority.DecodeCSR(a.CSR)
	}
	out, err := h.auth.Enroll(ctx, authority.EnrollRequest{Token: a.Authorization, Name: name, DeviceType: a.DeviceType, CSR: csr})
	if err != nil {
		if h.limiter != nil && isTokenFailure(err) {
			h.limiter.failed(ip)
		}
		return nil, err
	}
	return certResult(wire.OutcomeIssued, out)
}

func isTokenFailure(err error) bool {
	switch mtlsid.ErrorKind(err) {
	case mtlsid.KindUnauthorized, mtlsid.KindUsed, mtlsid.KindExpired:
		return true
	}
	return false
}

func (h *Handler) renew(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	var csr []byte
	if a.CSR != "" {
		csr = authority.DecodeCSR(a.CSR)
	}
	rn, err := h.auth.Renew(ctx, c, authority.RenewRequest{Tentative: a.Tentative, RevokePrevious: a.RevokePrevious, Name: a.Device, CSR: csr})
	if err != nil {
		return nil, err
	}
	if rn.Issued == nil {
		return wire.CertificateResult{Outcome: wire.OutcomeNotDue, Name: c.Name, SerialNumber: c.Serial, NotBefore: c.NotBefore.UnixMilli(), NotAfter: c.NotAfter.UnixMilli(), RenewalDue: rn.Due.UnixMilli()}, nil
	}
	return certResult(wire.OutcomeRenewed, rn.Issued)
}

func (h *Handler) devices(ctx context.Context, r *http.Request, _ *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	certs, err := h.auth.Devices(ctx, c)
	if err != nil {
		return nil, err
	}
	now := h.now()
	res := wire.DevicesResult{Outcome: wire.OutcomeOK, Identities: []wire.Device{}}
	for _, d := range certs {
		if d.Status(now) != mtlsid.StatusActive {
			continue
		}
		res.Identities = append(res.Identities, wire.Device{
			SerialNumber: d.Serial, Name: d.Name, DeviceType: d.DeviceType, Profile: string(d.Profile),
			Status: string(d.Status(now)), NotBefore: d.NotBefore.UnixMilli(), NotAfter: d.NotAfter.UnixMilli(),
			RenewedFrom: d.RenewedFrom, Current: d.Serial == c.Serial,
		})
	}
	return res, nil
}

func (h *Handler) revoke(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	if a.SerialNumber == "" {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "serial-number is required")
	}
	serial, err := mtlsid.NormalizeSerial(a.SerialNumber)
	if err != nil {
		return nil, err
	}
	if err := h.auth.Revoke(ctx, c, serial, mtlsid.ReasonCessationOfOperation); err != nil {
		return nil, err
	}
	return wire.RevokeResult{Outcome: wire.OutcomeRevoked, SerialNumber: serial}, nil
}

func certResult(outcome string, out *authority.Issued) (wire.CertificateResult, error) {
	res := wire.CertificateResult{
		Outcome: outcome, Name: out.Record.Name, SerialNumber: out.Record.Serial,
		Certificate: b64(out.CertificatePEM()), Chain: b64(out.ChainPEM()),
		NotBefore: out.Record.NotBefore.UnixMilli(), NotAfter: out.Record.NotAfter.UnixMilli(),
		RenewalDue: mtlsid.RenewalPoint(out.Record.NotBefore, out.Record.NotAfter).UnixMilli(),
	}
	if out.PrivateKey != nil {
		keyPEM, err := out.PrivateKeyPEM()
		if err != nil {
			return res, fmt.Errorf("encode generated key: %w", err)
		}
		res.PrivateKey, res.P12, res.Password = b64(keyPEM), b64(out.PKCS12), out.Password
	}
	return res, nil
}
