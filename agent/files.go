package agent

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/mtlsid/mtlsid/internal/atomicfile"
)

// Files names the files of one identity: Base plus .key, .cer,
// .chain.pem, .p12 and .password.
type Files struct{ Base string }

// Exts are the files' extensions, in the order they are written.
var Exts = []string{".key", ".cer", ".chain.pem", ".p12", ".password"}

// Certificate reads the current certificate.
func (f Files) Certificate() (*x509.Certificate, error) {
	b, err := os.ReadFile(f.Base + ".cer")
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s.cer holds no PEM certificate", f.Base)
	}
	return x509.ParseCertificate(block.Bytes)
}

// KeyPair loads the key and certificate (with its chain) for TLS.
func (f Files) KeyPair() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(f.Base + ".cer")
	if err != nil {
		return nil, err
	}
	if chain, err := os.ReadFile(f.Base + ".chain.pem"); err == nil {
		certPEM = append(certPEM, chain...)
	}
	keyPEM, err := os.ReadFile(f.Base + ".key")
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", f.Base, err)
	}
	return &c, nil
}

// Save writes a new key, certificate and chain, and a PKCS#12 of them
// with a new random password. Each file is replaced atomically, and the
// files it replaces are kept as .prev, so that a reload that fails can go
// back. The key is written last but one: a reader that sees the new key
// sees the new certificate too.
func (f Files) Save(key crypto.Signer, certPEM, chainPEM []byte) error {
	certs, err := parseCerts(certPEM)
	if err != nil || len(certs) != 1 {
		return errors.New("agent: the authority sent no certificate")
	}
	chain, err := parseCerts(chainPEM)
	if err != nil {
		return fmt.Errorf("agent: chain: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	password := newPassword()
	p12, err := pkcs12.Modern.Encode(key, certs[0], chain, password)
	if err != nil {
		return err
	}
	data := map[string][]byte{
		".key":       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		".cer":       certPEM,
		".chain.pem": chainPEM,
		".p12":       p12,
		".password":  []byte(password + "\n"),
	}
	if err := os.MkdirAll(filepath.Dir(f.Base), 0o700); err != nil {
		return err
	}
	for _, ext := range Exts {
		old, err := os.ReadFile(f.Base + ext)
		switch {
		case err == nil:
			if err := atomicfile.Write(f.Base+ext+".prev", old, 0o600); err != nil {
				return err
			}
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	// Certificate and chain first, key after: a TLS server that reloads
	// between two writes fails to pair them and keeps its old pair, rather
	// than serving a key with the wrong certificate.
	for _, ext := range []string{".cer", ".chain.pem", ".key", ".p12", ".password"} {
		if err := atomicfile.Write(f.Base+ext, data[ext], 0o600); err != nil {
			return err
		}
	}
	return nil
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

// newPassword returns 100 random bits in groups a person can copy.
func newPassword() string {
	b := make([]byte, 13)
	_, _ = rand.Read(b)
	s := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:20]
	return s[:5] + "-" + s[5:10] + "-" + s[10:15] + "-" + s[15:]
}
