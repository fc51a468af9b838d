package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
)

const year = 365 * 24 * time.Hour

// Defaults of InitConfig.
const (
	DefaultRootLifetime   = 20 * year
	DefaultIssuerLifetime = 10 * year
	DefaultName           = "mtlsid"
)

// InitConfig says how Init makes a CA. The zero value makes an ECDSA
// P-256 CA named "mtlsid" whose keys are NOT encrypted: callers decide
// whether that is allowed and warn.
type InitConfig struct {
	KeyType        KeyType       // zero: DefaultKeyType
	RootLifetime   time.Duration // zero: DefaultRootLifetime
	IssuerLifetime time.Duration // zero: DefaultIssuerLifetime; never past the root's
	// Name makes the CA common names "<Name> Root CA" and "<Name> Issuing
	// CA". Zero: DefaultName.
	Name string
	// Organization is the subject O of both CA certificates and of the
	// client certificates they issue. Zero: Name.
	Organization string
	// Country is the subject C of both CA certificates, an ISO 3166-1
	// two-letter code. Zero: "XX", the code for "not stated".
	Country string
	// Passphrase encrypts both keys at rest. Nil leaves them plain.
	Passphrase []byte
	KDFCost    int              // log2 of scrypt's N; zero: DefaultKDFCost
	Rand       io.Reader        // nil: crypto/rand
	Now        func() time.Time // nil: time.Now
}

// Config is how a CA issues. The zero value issues with the default
// lifetimes, the system clock and crypto/rand, and puts no URLs in
// certificates.
type Config struct {
	// OCSPURL and IssuerURL go into the Authority Information Access
	// extension, CRLURL into CRL Distribution Points, of every certificate
	// issued. Each must be an absolute plain-http URL: a relying party
	// fetches them while validating a chain, when https would need the
	// very validation in progress (RFC 5280 §4.2.2.1, and the CA/B Forum
	// BRs forbid https there). Empty leaves it out.
	OCSPURL   string
	CRLURL    string
	IssuerURL string

	DeviceLifetime time.Duration // zero: DefaultDeviceLifetime
	AgentLifetime  time.Duration // zero: DefaultAgentLifetime
	ServerLifetime time.Duration // zero: DefaultServerLifetime

	Now  func() time.Time // nil: time.Now
	Rand io.Reader        // nil: crypto/rand
}

// CA is a loaded certificate authority: the root and issuing certificates
// and the issuing key. It is immutable and safe for concurrent use; the
// certificates it returns are shared and must not be modified.
type CA struct {
	root, issuer *x509.Certificate
	key          crypto.Signer
	keyEncrypted bool
	chainPEM     []byte
	cfg          Config
}

// Init makes a new root and issuing CA and writes them to dir (made with
// mode 0700 if missing; keys 0600). It refuses with ErrExists, writing
// nothing, if any CA file is already in dir, and writes atomically: after a
// crash dir holds the whole CA or none of it.
//
// The returned CA issues with a Config holding cfg's Now and Rand; use
// WithConfig to set the rest.
func Init(dir string, cfg InitConfig) (*CA, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if Exists(dir) {
		return nil, fmt.Errorf("init CA in %s: %w", dir, ErrExists)
	}
	now := cfg.Now()
	rootKey, err := GenerateKey(cfg.KeyType, cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("generate root key: %w", err)
	}
	issuerKey, err := GenerateKey(cfg.KeyType, cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("generate issuer key: %w", err)
	}
	root, err := makeRoot(cfg, rootKey, now)
	if err != nil {
		return nil, err
	}
	issuer, err := makeIssuer(cfg, root, rootKey, issuerKey, now)
	if err != nil {
		return nil, err
	}
	rootKeyPEM, err := MarshalKeyCost(rootKey, cfg.Passphrase, cfg.KDFCost, cfg.Rand)
	if err != nil {
		return nil, err
	}
	issuerKeyPEM, err := MarshalKeyCost(issuerKey, cfg.Passphrase, cfg.KDFCost, cfg.Rand)
	if err != nil {
		return nil, err
	}
	err = writeCA(dir, []caFile{
		{RootKeyFile, rootKeyPEM, 0o600},
		{RootCertFile, certPEM(root), 0o644},
		{IssuerKeyFile, issuerKeyPEM, 0o600},
		{IssuerCertFile, certPEM(issuer), 0o644},
	})
	if err != nil {
		return nil, fmt.Errorf("init CA in %s: %w", dir, err)
	}
	return newCA(root, issuer, issuerKey, len(cfg.Passphrase) > 0, Config{Now: cfg.Now, Rand: cfg.Rand})
}

func (cfg *InitConfig) fill() error {
	if cfg.KeyType == "" {
		cfg.KeyType = DefaultKeyType
	}
	if _, err := ParseKeyType(string(cfg.KeyType)); err != nil {
		return err
	}
	if cfg.RootLifetime == 0 {
		cfg.RootLifetime = DefaultRootLifetime
	}
	if cfg.IssuerLifetime == 0 {
		cfg.IssuerLifetime = DefaultIssuerLifetime
	}
	if cfg.RootLifetime < 0 || cfg.IssuerLifetime < 0 {
		return mtlsid.Errorf(mtlsid.KindInvalid, "CA lifetimes must be positive")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Organization == "" {
		cfg.Organization = cfg.Name
	}
	if cfg.Country == "" {
		cfg.Country = "XX"
	}
	// The CN gets " Issuing CA" appended and must stay within RFC 5280's
	// 64 characters.
	if err := checkNameField("CA name", cfg.Name); err != nil || len(cfg.Name) > 50 {
		return mtlsid.Errorf(mtlsid.KindInvalid, "CA name must be text of at most 50 characters")
	}
	if err := checkNameField("CA organization", cfg.Organization); err != nil {
		return err
	}
	if len(cfg.Country) != 2 || strings.Trim(cfg.Country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return mtlsid.Errorf(mtlsid.KindInvalid, "CA country %q is not a two-letter upper-case ISO 3166 code", cfg.Country)
	}
	if cfg.KDFCost == 0 {
		cfg.KDFCost = DefaultKDFCost
	}
	cfg.Rand = randOrDefault(cfg.Rand)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// Load reads the CA in dir for issuing: both certificates and the issuing
// key, which passphrase opens if it is encrypted. The root key is not read,
// so it may be kept offline.
//
// A missing dir or file gives an error matching fs.ErrNotExist; an
// encrypted key with no passphrase ErrPassphraseRequired; a wrong
// passphrase ErrWrongPassphrase. Load never writes. The CA issues with the
// zero Config; use WithConfig to change it.
func Load(dir string, passphrase []byte) (*CA, error) {
	root, err := readCert(filepath.Join(dir, RootCertFile))
	if err != nil {
		return nil, err
	}
	issuer, err := readCert(filepath.Join(dir, IssuerCertFile))
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, IssuerKeyFile)
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load issuer key: %w", err)
	}
	key, err := ParseKey(keyPEM, passphrase)
	if err != nil {
		return nil, fmt.Errorf("load issuer key %s: %w", keyPath, err)
	}
	if !root.IsCA || !issuer.IsCA {
		return nil, fmt.Errorf("load CA %s: root and issuer must be CA certificates", dir)
	}
	if err := root.CheckSignature(root.SignatureAlgorithm, root.RawTBSCertificate, root.Signature); err != nil {
		return nil, fmt.Errorf("load CA %s: root is not self-signed: %w", dir, err)
	}
	if err := issuer.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("load CA %s: issuer is not signed by root: %w", dir, err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(issuer.PublicKey) {
		return nil, fmt.Errorf("load CA %s: issuer key does not match issuer certificate", dir)
	}
	return newCA(root, issuer, key, IsEncryptedKey(keyPEM), Config{})
}

func newCA(root, issuer *x509.Certificate, key crypto.Signer, encrypted bool, cfg Config) (*CA, error) {
	c := &CA{
		root:         root,
		issuer:       issuer,
		key:          key,
		keyEncrypted: encrypted,
		chainPEM:     append(certPEM(issuer), certPEM(root)...),
	}
	return c.WithConfig(cfg)
}

// WithConfig returns a copy of c that issues with cfg, or a KindInvalid
// error if a URL or lifetime in cfg is unusable. c is unchanged.
func (c *CA) WithConfig(cfg Config) (*CA, error) {
	for _, u := range []string{cfg.OCSPURL, cfg.CRLURL, cfg.IssuerURL} {
		if u == "" {
			continue
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "http" || pu.Host == "" {
			return nil, mtlsid.Errorf(mtlsid.KindInvalid, "CA URL %q is not an absolute http:// URL", u)
		}
	}
	if cfg.DeviceLifetime < 0 || cfg.AgentLifetime < 0 || cfg.ServerLifetime < 0 {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "certificate lifetimes must be positive")
	}
	cp := *c
	cp.cfg = cfg
	return &cp, nil
}

// Config returns the configuration c issues with, as given to WithConfig.
func (c *CA) Config() Config { return c.cfg }

// Root returns the root CA certificate.
func (c *CA) Root() *x509.Certificate { return c.root }

// Issuer returns the issuing CA certificate, which signs every certificate,
// CRL and OCSP response.
func (c *CA) Issuer() *x509.Certificate { return c.issuer }

// Chain returns the issuing certificate and then the root, the order a TLS
// peer sends them after its own certificate.
func (c *CA) Chain() []*x509.Certificate { return []*x509.Certificate{c.issuer, c.root} }

// ChainPEM returns Chain as concatenated PEM blocks. The slice is a copy.
func (c *CA) ChainPEM() []byte { return bytes.Clone(c.chainPEM) }

// RootFingerprint returns the root's SHA-256 fingerprint in the form
// openssl prints, for people to compare when they install the root.
func (c *CA) RootFingerprint() string { return mtlsid.Fingerprint(c.root.Raw) }

// Signer returns the issuing key, for signing OCSP responses. It must not
// be logged or marshaled.
func (c *CA) Signer() crypto.Signer { return c.key }

// KeyEncrypted reports whether the issuing key is encrypted at rest. Load
// accepts a plain key even when given a passphrase; callers warn when this
// is false.
func (c *CA) KeyEncrypted() bool { return c.keyEncrypted }

func (c *CA) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

func (c *CA) rand() io.Reader { return randOrDefault(c.cfg.Rand) }

func makeRoot(cfg InitConfig, key crypto.Signer, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial(cfg.Rand)
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-backdate).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               caName(cfg, "Root CA"),
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(cfg.RootLifetime - time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		SubjectKeyId:          subjectKeyID(key.Public()),
	}
	return createCert(cfg.Rand, tmpl, tmpl, key.Public(), key)
}

func makeIssuer(cfg InitConfig, root *x509.Certificate, rootKey, key crypto.Signer, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial(cfg.Rand)
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-backdate).UTC().Truncate(time.Second)
	notAfter := notBefore.Add(cfg.IssuerLifetime - time.Second)
	if notAfter.After(root.NotAfter) {
		notAfter = root.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      caName(cfg, "Issuing CA"),
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		// DigitalSignature because the issuer signs OCSP responses itself.
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          subjectKeyID(key.Public()),
		// anyPolicy: the issuer is not restricted to a policy. The CA/B
		// Forum BRs require a policy extension on every TLS sub-CA.
		Policies: []x509.OID{anyPolicy},
	}
	return createCert(cfg.Rand, tmpl, root, key.Public(), rootKey)
}

var anyPolicy = mustOID("2.5.29.32.0")

func caName(cfg InitConfig, role string) pkix.Name {
	return pkix.Name{
		Country:      []string{cfg.Country},
		Organization: []string{cfg.Organization},
		CommonName:   cfg.Name + " " + role,
	}
}

func createCert(rand io.Reader, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("load CA certificate %s: no CERTIFICATE PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate %s: %w", path, err)
	}
	return cert, nil
}

// errNoSerial guards against a reader that returns only zeros.
var errNoSerial = errors.New("random serial is zero: broken random source")

// randomSerial returns a positive serial of 127 random bits: 16 bytes with
// the top bit cleared, so its DER encoding needs no leading zero and stays
// within RFC 5280's 20 octets, well above the CA/B Forum's 64 bits.
func randomSerial(rand io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(randOrDefault(rand), b); err != nil {
		return nil, fmt.Errorf("random serial: %w", err)
	}
	b[0] &= 0x7f
	n := new(big.Int).SetBytes(b)
	if n.Sign() == 0 {
		return nil, errNoSerial
	}
	return n, nil
}

func mustOID(s string) x509.OID {
	oid, err := x509.ParseOID(s)
	if err != nil {
		panic(err)
	}
	return oid
}
