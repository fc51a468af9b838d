package authority

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/ca"
)

// EnrollRequest is an enrollment: a token, and the key to certify.
type EnrollRequest struct {
	Token string
	// Name is the device or agent name, the certificate's CN.
	Name string
	// DeviceType is the OU; empty means Desktop for a person's device and
	// Agent for a service agent.
	DeviceType string
	// CSR, PEM or DER, carries the public key. Nil means the authority
	// makes the key and returns it in a PKCS#12, as the reference does.
	CSR []byte
}

// Issued is a certificate the authority has committed, with its chain and,
// when the authority made the key, the key and a PKCS#12 of both.
type Issued struct {
	Record      mtlsid.Certificate
	Certificate *x509.Certificate
	Chain       []*x509.Certificate // issuing CA, then root
	// Set only when the authority generated the key. The password is shown
	// once and never stored.
	PrivateKey crypto.Signer
	PKCS12     []byte
	Password   string
}

// CertificatePEM returns the certificate in PEM.
func (i *Issued) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.Certificate.Raw})
}

// ChainPEM returns the issuing CA and root in PEM.
func (i *Issued) ChainPEM() []byte {
	var b []byte
	for _, c := range i.Chain {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// PrivateKeyPEM returns the generated key in PKCS#8 PEM, or nil.
func (i *Issued) PrivateKeyPEM() ([]byte, error) {
	if i.PrivateKey == nil {
		return nil, nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(i.PrivateKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Enroll checks the token, certifies the CSR's key (or a key it makes),
// and commits the certificate, the token's use and the audit entries in one
// transaction. Errors: a token unknown, used or expired (the sentinels), a
// bad CSR or name (KindInvalid, KindTooLarge). Nothing is stored on error.
func (a *Authority) Enroll(ctx context.Context, req EnrollRequest) (*Issued, error) {
	now := a.clock()
	name, err := checkName(req.Name)
	if err != nil {
		return nil, err
	}
	pub, key, err := a.subjectKey(req.CSR)
	if err != nil {
		return nil, err
	}
	tok, err := a.checkToken(ctx, req.Token, now)
	if err != nil {
		a.log.Warn("enrollment refused", "token", tokenRef(mtlsid.HashToken(strings.TrimSpace(req.Token))), "err", err)
		return nil, err
	}
	profile, kind, defType := mtlsid.ProfileDevice, mtlsid.KindPerson, mtlsid.DeviceDesktop
	if tok.Purpose == mtlsid.TokenAgent {
		profile, kind, defType = mtlsid.ProfileAgent, mtlsid.KindService, mtlsid.DeviceAgent
	}
	devType, err := checkDeviceType(req.DeviceType, defType)
	if err != nil {
		return nil, err
	}
	var ident *mtlsid.Identity
	idID := tok.IdentityID
	if idID == "" {
		prefix := "p_"
		if kind == mtlsid.KindService {
			prefix = "s_"
		}
		if idID, err = newID(a.rand, prefix); err != nil {
			return nil, err
		}
		ident = &mtlsid.Identity{ID: idID, Kind: kind, Name: name, CreatedAt: now}
	}
	out, err := a.sign(ctx, signing{
		at: now, profile: profile, identityID: idID, name: name, deviceType: devType,
		pub: pub, key: key, tokenHash: tok.Hash, identity: ident,
		actor: tokenRef(tok.Hash), auditType: mtlsid.AuditCertIssued,
		extraAudit: []mtlsid.AuditEvent{{Time: now, Type: mtlsid.AuditTokenUsed, Actor: tokenRef(tok.Hash), Subject: idID}},
	})
	if err != nil {
		return nil, err
	}
	a.log.Info("enrolled", "serial", out.Record.Serial, "identity", idID, "profile", profile, "name", name)
	return out, nil
}

// signing is everything one issuance needs.
type signing struct {
	at           time.Time
	profile      mtlsid.Profile
	identityID   string
	name         string
	deviceType   string
	dnsNames     []string
	ips          []string
	pub          crypto.PublicKey
	key          crypto.Signer // set when the authority made the key
	lifetime     time.Duration
	tokenHash    []byte
	identity     *mtlsid.Identity
	renewedFrom  string
	development  bool
	revokeSerial string
	actor        string
	auditType    string
	extraAudit   []mtlsid.AuditEvent
}

// sign issues the certificate and commits it. A serial collision, which
// 128 random bits make practically impossible, is retried once with a new
// serial rather than surfaced.
func (a *Authority) sign(ctx context.Context, s signing) (*Issued, error) {
	for attempt := 0; ; attempt++ {
		out, err := a.signOnce(ctx, s)
		if mtlsid.ErrorKind(err) == mtlsid.KindConflict && attempt == 0 && s.revokeSerial == "" {
			continue
		}
		return out, err
	}
}

func (a *Authority) signOnce(ctx context.Context, s signing) (*Issued, error) {
	req := ca.Request{
		Profile: s.profile, PublicKey: s.pub, CommonName: s.name, DeviceType: s.deviceType,
		DNSNames: s.dnsNames, NotBefore: s.at, Lifetime: s.lifetime,
	}
	if s.profile == mtlsid.ProfileServer {
		// The CA takes a server certificate's CN from its first name.
		req.CommonName, req.DeviceType = "", ""
	}
	for _, ip := range s.ips {
		req.IPAddresses = append(req.IPAddresses, parseIP(ip))
	}
	cert, err := a.ca.Issue(req)
	if err != nil {
		return nil, err
	}
	rec := mtlsid.Certificate{
		Serial: cert.SerialNumber.String(), IdentityID: s.identityID, Profile: s.profile,
		Name: s.name, DeviceType: s.deviceType,
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(), DER: cert.Raw,
		RenewedFrom: s.renewedFrom, Development: s.development, CreatedAt: s.at,
	}
	detail := fmt.Sprintf("profile=%s name=%q type=%s identity=%s not_after=%s", s.profile, s.name, s.deviceType, s.identityID, rec.NotAfter.Format(time.RFC3339))
	if s.renewedFrom != "" {
		detail += " renewed_from=" + s.renewedFrom
	}
	if s.development {
		detail += " development=true"
	}
	audit := append([]mtlsid.AuditEvent{}, s.extraAudit...)
	audit = append(audit, mtlsid.AuditEvent{Time: s.at, Type: s.auditType, Actor: s.actor, Subject: rec.Serial, Detail: detail})
	if s.revokeSerial != "" {
		audit = append(audit, mtlsid.AuditEvent{Time: s.at, Type: mtlsid.AuditCertRevoked, Actor: s.actor, Subject: s.revokeSerial, Detail: "reason=superseded by " + rec.Serial})
	}
	it := mtlsid.Issuance{
		At: s.at, TokenHash: s.tokenHash, Identity: s.identity, Certificate: rec,
		RevokeSerial: s.revokeSerial, Audit: audit,
	}
	if s.revokeSerial != "" {
		it.RevokeReason = mtlsid.ReasonSuperseded
	}
	if err := a.issue(ctx, it); err != nil {
		return nil, err
	}
	if s.revokeSerial != "" {
		a.certificateRevoked(s.revokeSerial)
	}
	if s.revokeSerial != "" && a.onRevoke != nil {
		a.onRevoke(ctx)
	}
	out := &Issued{Record: rec, Certificate: cert, Chain: a.ca.Chain()}
	if s.key != nil {
		out.PrivateKey = s.key
		out.Password = ca.NewPassword(a.rand)
		if out.PKCS12, err = ca.PKCS12(s.key, cert, out.Chain, out.Password); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// subjectKey returns the public key to certify: the CSR's, after checking
// it, or a new key the authority makes when there is no CSR.
func (a *Authority) subjectKey(csr []byte) (crypto.PublicKey, crypto.Signer, error) {
	if len(csr) == 0 {
		key, err := ca.GenerateKey(ca.DefaultKeyType, a.rand)
		if err != nil {
			return nil, nil, err
		}
		return key.Public(), key, nil
	}
	req, err := ca.ParseCSR(csr)
	if err != nil {
		return nil, nil, err
	}
	return req.PublicKey, nil, nil
}

// DecodeCSR accepts a CSR as PEM, as DER, or as base64 of either, which is
// how JSON bodies carry it.
func DecodeCSR(s string) []byte {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		return []byte(s)
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b
	}
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b
	}
	return []byte(s)
}

// checkName validates a device or agent name: the certificate's CN.
func checkName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "a device name is required")
	case !utf8.ValidString(name):
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "device name is not valid UTF-8")
	case utf8.RuneCountInString(name) > 64:
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "device name is longer than 64 characters")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", mtlsid.Errorf(mtlsid.KindInvalid, "device name contains a control character")
		}
	}
	return name, nil
}

var deviceTypes = []string{mtlsid.DeviceBrowser, mtlsid.DeviceDesktop, mtlsid.DeviceMobile, mtlsid.DeviceAgent, mtlsid.DeviceServer}

func checkDeviceType(t, def string) (string, error) {
	if t == "" {
		return def, nil
	}
	for _, d := range deviceTypes {
		if strings.EqualFold(t, d) {
			return d, nil
		}
	}
	return "", mtlsid.Errorf(mtlsid.KindInvalid, "unknown device type %q (one of %s)", t, strings.Join(deviceTypes, ", "))
}
