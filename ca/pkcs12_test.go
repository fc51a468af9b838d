package ca

import (
	"crypto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/mtlsid/mtlsid"
)

func TestPKCS12(t *testing.T) {
	c, _ := newTestCA(t, ECDSAP256)
	keys := testKeys(t, ECDSAP256, RSA2048)
	for kt, key := range keys {
		t.Run(string(kt), func(t *testing.T) {
			cert, err := c.Issue(Request{Profile: mtlsid.ProfileDevice, PublicKey: key.Public(), CommonName: "Ana's phone", DeviceType: mtlsid.DeviceMobile})
			if err != nil {
				t.Fatal(err)
			}
			password := NewPassword(nil)
			pfx, err := PKCS12(key, cert, c.Chain(), password)
			if err != nil {
				t.Fatal(err)
			}

			gotKey, gotCert, chain, err := pkcs12.DecodeChain(pfx, password)
			if err != nil {
				t.Fatalf("go-pkcs12: %v", err)
			}
			if !gotCert.Equal(cert) || len(chain) != 2 || !chain[0].Equal(c.Issuer()) || !chain[1].Equal(c.Root()) {
				t.Error("go-pkcs12 decoded other certificates")
			}
			if signer, ok := gotKey.(crypto.Signer); !ok || !samePublicKey(key.Public(), signer.Public()) {
				t.Error("go-pkcs12 decoded another key")
			}
			if _, _, _, err := pkcs12.DecodeChain(pfx, password+"x"); err == nil {
				t.Error("wrong password accepted")
			}

			openssl, err := exec.LookPath("openssl")
			if err != nil {
				t.Skip("openssl not installed")
			}
			file := filepath.Join(t.TempDir(), "id.p12")
			if err := os.WriteFile(file, pfx, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(openssl, "pkcs12", "-in", file, "-passin", "pass:"+password, "-nokeys").CombinedOutput()
			if err != nil {
				t.Fatalf("openssl pkcs12: %v\n%s", err, out)
			}
			if n := strings.Count(string(out), "BEGIN CERTIFICATE"); n != 3 {
				t.Errorf("openssl found %d certificates, want 3:\n%s", n, out)
			}
			out, err = exec.Command(openssl, "pkcs12", "-in", file, "-passin", "pass:"+password, "-nocerts", "-nodes").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "BEGIN PRIVATE KEY") {
				t.Errorf("openssl could not read the key: %v\n%s", err, out)
			}
		})
	}

	t.Run("mismatched key", func(t *testing.T) {
		cert, _ := c.Issue(Request{Profile: mtlsid.ProfileAgent, PublicKey: keys[ECDSAP256].Public(), CommonName: "a"})
		if _, err := PKCS12(keys[RSA2048], cert, nil, "pw"); err == nil {
			t.Error("accepted a key that does not match the certificate")
		}
		if _, err := PKCS12(keys[ECDSAP256], cert, nil, ""); err == nil {
			t.Error("accepted an empty password")
		}
	})
}

func TestNewPassword(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{5}(-[0-9a-hjkmnp-tv-z]{5}){3}$`)
	seen := map[string]bool{}
	for range 1000 {
		p := NewPassword(nil)
		if !shape.MatchString(p) {
			t.Fatalf("password %q has the wrong shape", p)
		}
		if seen[p] {
			t.Fatalf("password %q repeated", p)
		}
		seen[p] = true
	}
	// A failing reader must not give a fixed password.
	if a, b := NewPassword(failingReader{}), NewPassword(failingReader{}); a == b {
		t.Errorf("failing reader gave %q twice", a)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, os.ErrClosed }
