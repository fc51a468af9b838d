package ca

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"math/big"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

// testKeys makes one key per type, shared by the subtests that need it:
// RSA key generation is slow on small machines.
func testKeys(t *testing.T, types ...KeyType) map[KeyType]crypto.Signer {
	t.Helper()
	keys := map[KeyType]crypto.Signer{}
	for _, kt := range types {
		k, err := GenerateKey(kt, nil)
		if err != nil {
			t.Fatal(err)
		}
		keys[kt] = k
	}
	return keys
}

func profileRequest(p mtlsid.Profile, pub crypto.PublicKey) Request {
	switch p {
	case mtlsid.ProfileDevice:
		return Request{Profile: p, PublicKey: pub, CommonName: "Ana's laptop", DeviceType: mtlsid.DeviceBrowser}
	case mtlsid.ProfileAgent:
		return Request{Profile: p, PublicKey: pub, CommonName: "billing-api"}
	}
	// 203.0.114.7 is outside the reserved ranges, which zlint refuses in
	// server certificates.
	return Request{Profile: p, PublicKey: pub, DNSNames: []string{"svc.example.com", "*.svc.example.com"}, IPAddresses: []net.IP{net.ParseIP("203.0.114.7")}}
}

func TestIssueProfiles(t *testing.T) {
	leafTypes := []KeyType{ECDSAP256, ECDSAP384, RSA2048}
	keys := testKeys(t, leafTypes...)
	for _, caType := range []KeyType{ECDSAP256, RSA2048} {
		c, _ := newTestCA(t, caType)
		roots := x509.NewCertPool()
		roots.AddCert(c.Root())
		inters := x509.NewCertPool()
		inters.AddCert(c.Issuer())
		for _, p := range []mtlsid.Profile{mtlsid.ProfileDevice, mtlsid.ProfileAgent, mtlsid.ProfileServer} {
			for _, kt := range leafTypes {
				t.Run(string(caType)+"/"+string(p)+"/"+string(kt), func(t *testing.T) {
					req := profileRequest(p, keys[kt].Public())
					cert, err := c.Issue(req)
					if err != nil {
						t.Fatalf("Issue: %v", err)
					}
					lintCert(t, cert)
					checkProfile(t, c, p, cert)

					usage, wrong := x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth
					if p == mtlsid.ProfileServer {
						usage, wrong = wrong, usage
					}
					opts := x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{usage}}
					if p == mtlsid.ProfileServer {
						opts.DNSName = "a.svc.example.com"
					}
					chains, err := cert.Verify(opts)
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					if len(chains[0]) != 3 {
						t.Errorf("chain length %d, want 3", len(chains[0]))
					}
					opts.KeyUsages = []x509.ExtKeyUsage{wrong}
					if _, err := cert.Verify(opts); err == nil {
						t.Errorf("certificate verified for the wrong key usage %v", wrong)
					}
				})
			}
		}
	}
}

func checkProfile(t *testing.T, c *CA, p mtlsid.Profile, cert *x509.Certificate) {
	t.Helper()
	if cert.IsCA || cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("IsCA %v, KeyUsage %v", cert.IsCA, cert.KeyUsage)
	}
	if !bytes.Equal(cert.AuthorityKeyId, c.Issuer().SubjectKeyId) || len(cert.SubjectKeyId) != 20 {
		t.Errorf("AKI %x (issuer SKI %x), SKI %x", cert.AuthorityKeyId, c.Issuer().SubjectKeyId, cert.SubjectKeyId)
	}
	if !slices.Equal(cert.OCSPServer, []string{testConfig.OCSPURL}) ||
		!slices.Equal(cert.CRLDistributionPoints, []string{testConfig.CRLURL}) ||
		!slices.Equal(cert.IssuingCertificateURL, []string{testConfig.IssuerURL}) {
		t.Errorf("URLs: OCSP %v, CRL %v, issuer %v", cert.OCSPServer, cert.CRLDistributionPoints, cert.IssuingCertificateURL)
	}
	life := cert.NotAfter.Sub(cert.NotBefore) + time.Second
	subj := cert.Subject
	switch p {
	case mtlsid.ProfileDevice:
		if subj.CommonName != "Ana's laptop" || !slices.Equal(subj.OrganizationalUnit, []string{"Browser"}) || !slices.Equal(subj.Organization, []string{"mtlsid"}) {
			t.Errorf("device subject %v", subj)
		}
		if life != DefaultDeviceLifetime {
			t.Errorf("device lifetime %v", life)
		}
	case mtlsid.ProfileAgent:
		if subj.CommonName != "billing-api" || !slices.Equal(subj.OrganizationalUnit, []string{"Agent"}) {
			t.Errorf("agent subject %v", subj)
		}
		if life != DefaultAgentLifetime {
			t.Errorf("agent lifetime %v", life)
		}
	case mtlsid.ProfileServer:
		if subj.CommonName != "svc.example.com" || len(subj.OrganizationalUnit) != 0 || len(cert.DNSNames) != 2 || len(cert.IPAddresses) != 1 {
			t.Errorf("server subject %v, names %v %v", subj, cert.DNSNames, cert.IPAddresses)
		}
		if life != DefaultServerLifetime {
			t.Errorf("server lifetime %v", life)
		}
	}
}

func TestIssueRSA4096(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA-4096 key generation is slow")
	}
	c, _ := newTestCA(t, ECDSAP256)
	keys := testKeys(t, RSA4096)
	cert, err := c.Issue(profileRequest(mtlsid.ProfileAgent, keys[RSA4096].Public()))
	if err != nil {
		t.Fatal(err)
	}
	lintCert(t, cert)
	if n := cert.PublicKey.(*rsa.PublicKey).N.BitLen(); n != 4096 {
		t.Errorf("key of %d bits", n)
	}
}

func TestIssueRejects(t *testing.T) {
	c, _ := newTestCA(t, ECDSAP256)
	pub := testKeys(t, ECDSAP256)[ECDSAP256].Public()
	weak, err := rsa.GenerateKey(nil, 1024)
	if err != nil {
		t.Fatal(err)
	}
	device := profileRequest(mtlsid.ProfileDevice, pub)
	server := profileRequest(mtlsid.ProfileServer, pub)
	tests := []struct {
		name string
		edit func(r *Request)
		base Request
	}{
		{"device without type", func(r *Request) { r.DeviceType = "" }, device},
		{"device without name", func(r *Request) { r.CommonName = "" }, device},
		{"name too long", func(r *Request) { r.CommonName = string(bytes.Repeat([]byte("x"), 65)) }, device},
		{"name with control", func(r *Request) { r.CommonName = "a\nb" }, device},
		{"device with DNS", func(r *Request) { r.DNSNames = []string{"a.example.com"} }, device},
		{"weak key", func(r *Request) { r.PublicKey = weak.Public() }, device},
		{"no key", func(r *Request) { r.PublicKey = nil }, device},
		{"unknown profile", func(r *Request) { r.Profile = "root" }, device},
		{"short lifetime", func(r *Request) { r.Lifetime = time.Second }, device},
		{"negative serial", func(r *Request) { r.Serial = big.NewInt(-5) }, device},
		{"server without names", func(r *Request) { r.DNSNames, r.IPAddresses = nil, nil }, server},
		{"server with CN", func(r *Request) { r.CommonName = "other.example.com" }, server},
		{"server upper case", func(r *Request) { r.DNSNames = []string{"Svc.example.com"} }, server},
		{"server bad label", func(r *Request) { r.DNSNames = []string{"-svc.example.com"} }, server},
		{"server inner wildcard", func(r *Request) { r.DNSNames = []string{"a.*.example.com"} }, server},
		{"server bare wildcard", func(r *Request) { r.DNSNames = []string{"*"} }, server},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.base
			req.DNSNames = slices.Clone(req.DNSNames)
			tt.edit(&req)
			cert, err := c.Issue(req)
			if mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
				t.Errorf("Issue: cert %v, err %v; want KindInvalid", cert != nil, err)
			}
		})
	}

	t.Run("server without revocation URLs", func(t *testing.T) {
		bare, _ := c.WithConfig(Config{CRLURL: testConfig.CRLURL})
		if _, err := bare.Issue(server); err == nil {
			t.Error("issued a server certificate with no way to check revocation")
		}
	})
}

func TestIssueValidity(t *testing.T) {
	now := time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC)
	c, err := Init(t.TempDir(), InitConfig{Now: fixedClock(now), IssuerLifetime: 2 * year, KDFCost: MinKDFCost})
	if err != nil {
		t.Fatal(err)
	}
	pub := testKeys(t, ECDSAP256)[ECDSAP256].Public()
	issue := func(cfg Config, edit func(*Request)) (*x509.Certificate, error) {
		cfg.Now = fixedClock(now)
		cc, err := c.WithConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		req := profileRequest(mtlsid.ProfileDevice, pub)
		if edit != nil {
			edit(&req)
		}
		return cc.Issue(req)
	}

	cert, err := issue(Config{DeviceLifetime: 30 * 24 * time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-backdate); !cert.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %v, want %v", cert.NotBefore, want)
	}
	if want := now.Add(-backdate + 30*24*time.Hour - time.Second); !cert.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v (Config lifetime)", cert.NotAfter, want)
	}

	start := now.Add(time.Hour)
	cert, err = issue(Config{}, func(r *Request) { r.NotBefore, r.Lifetime = start, 48*time.Hour })
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotBefore.Equal(start) || !cert.NotAfter.Equal(start.Add(48*time.Hour-time.Second)) {
		t.Errorf("validity %v - %v, want from %v for 48h", cert.NotBefore, cert.NotAfter, start)
	}

	cert, err = issue(Config{}, func(r *Request) { r.Lifetime = 5 * year })
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(c.Issuer().NotAfter) {
		t.Errorf("NotAfter %v not clamped to the issuer's %v", cert.NotAfter, c.Issuer().NotAfter)
	}

	now = c.Issuer().NotAfter.Add(time.Hour)
	if _, err := issue(Config{}, nil); err == nil {
		t.Error("issued after the issuer expired")
	}
}

func TestSerials(t *testing.T) {
	seen := map[string]bool{}
	var maxBits int
	for range 2000 {
		n, err := randomSerial(nil)
		if err != nil {
			t.Fatal(err)
		}
		if n.Sign() <= 0 || n.BitLen() > 127 {
			t.Fatalf("serial %x: sign %d, %d bits", n, n.Sign(), n.BitLen())
		}
		if seen[n.String()] {
			t.Fatalf("serial %x repeated", n)
		}
		seen[n.String()] = true
		maxBits = max(maxBits, n.BitLen())
	}
	// With 127 random bits, each draw is under 120 bits with probability
	// 2^-7, so all 2000 are with probability 2^-14000.
	if maxBits < 120 {
		t.Errorf("largest of 2000 serials has %d bits: not 127 random bits", maxBits)
	}
	if _, err := randomSerial(bytes.NewReader(make([]byte, 16))); err == nil {
		t.Error("all-zero serial accepted")
	}

	c, _ := newTestCA(t, ECDSAP256)
	pub := testKeys(t, ECDSAP256)[ECDSAP256].Public()
	req := profileRequest(mtlsid.ProfileAgent, pub)
	a, err := c.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Issue(req)
	if a.SerialNumber.Cmp(b.SerialNumber) == 0 || a.SerialNumber.BitLen() < 64 {
		t.Errorf("serials %x and %x", a.SerialNumber, b.SerialNumber)
	}
	req.Serial = big.NewInt(424242)
	fixed, err := c.Issue(req)
	if err != nil || fixed.SerialNumber.Int64() != 424242 {
		t.Errorf("given serial: %v, %v", fixed, err)
	}
}

// A private CA serves hosts such as localhost that public-TLS rules refuse.
func TestIssueServerLocalhost(t *testing.T) {
	c, _ := newTestCA(t, DefaultKeyType)
	key, err := GenerateKey(DefaultKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.Issue(Request{Profile: mtlsid.ProfileServer, PublicKey: key.Public(), DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
}
