package ca

import (
	"bytes"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

// lintIssuerAllowed are the zlint errors the issuing CA certificate is
// allowed.
//
// e_sub_ca_crl_distribution_points_missing: the CA/B Forum wants a
// publicly-trusted sub-CA to point at the root's CRL so that the root can
// revoke it. mtlsid's root key is kept offline and signs exactly one
// issuer; there is no root CRL to point at, and no URL is known when the
// CA is made. Revoking the issuer means making a new CA, which every
// relying party sees as a new trust anchor. No certificate content fixes
// this short of publishing a root CRL.
var lintIssuerAllowed = []string{"e_sub_ca_crl_distribution_points_missing"}

func TestInitLoad(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, ECDSAP384, RSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			c, dir := newTestCA(t, kt)
			root, issuer := c.Root(), c.Issuer()

			lintCert(t, root)
			lintCert(t, issuer, lintIssuerAllowed...)
			if !root.IsCA || root.MaxPathLen != 1 || !bytes.Equal(root.RawIssuer, root.RawSubject) {
				t.Errorf("root: IsCA %v, MaxPathLen %d, self-issued %v", root.IsCA, root.MaxPathLen, bytes.Equal(root.RawIssuer, root.RawSubject))
			}
			if !issuer.IsCA || issuer.MaxPathLen != 0 || !issuer.MaxPathLenZero {
				t.Errorf("issuer: IsCA %v, MaxPathLen %d, zero %v", issuer.IsCA, issuer.MaxPathLen, issuer.MaxPathLenZero)
			}
			if err := issuer.CheckSignatureFrom(root); err != nil {
				t.Errorf("issuer not signed by root: %v", err)
			}
			if !bytes.Equal(issuer.AuthorityKeyId, root.SubjectKeyId) || len(root.SubjectKeyId) == 0 {
				t.Errorf("issuer AKI %x, root SKI %x", issuer.AuthorityKeyId, root.SubjectKeyId)
			}
			if got, want := issuer.Subject.CommonName, "mtlsid Issuing CA"; got != want {
				t.Errorf("issuer CN = %q, want %q", got, want)
			}

			checkPerm(t, dir, 0o700)
			for _, f := range caFiles() {
				want := fs.FileMode(0o644)
				if f == RootKeyFile || f == IssuerKeyFile {
					want = 0o600
				}
				checkPerm(t, filepath.Join(dir, f), want)
			}

			loaded, err := Load(dir, testPassphrase)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !loaded.Root().Equal(root) || !loaded.Issuer().Equal(issuer) {
				t.Error("Load returned other certificates than Init made")
			}
			if !loaded.KeyEncrypted() {
				t.Error("KeyEncrypted = false for an encrypted key")
			}
			if loaded.RootFingerprint() != mtlsid.Fingerprint(root.Raw) || len(loaded.RootFingerprint()) != 95 {
				t.Errorf("RootFingerprint = %q", loaded.RootFingerprint())
			}
			chain := loaded.Chain()
			if len(chain) != 2 || chain[0] != loaded.Issuer() || chain[1] != loaded.Root() {
				t.Errorf("Chain is not [issuer, root]")
			}
			rest := loaded.ChainPEM()
			for i, want := range chain {
				var der []byte
				der, rest = nextCertDER(t, rest)
				if !bytes.Equal(der, want.Raw) {
					t.Errorf("ChainPEM block %d is not chain[%d]", i, i)
				}
			}
		})
	}
}

func checkPerm(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", filepath.Base(path), got, want)
	}
}

func TestInitRefusesToOverwrite(t *testing.T) {
	for _, name := range caFiles() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			old := []byte("something precious\n")
			if err := os.WriteFile(filepath.Join(dir, name), old, 0o600); err != nil {
				t.Fatal(err)
			}
			if !Exists(dir) {
				t.Error("Exists = false with " + name + " present")
			}
			_, err := Init(dir, InitConfig{KDFCost: MinKDFCost})
			if !errors.Is(err, ErrExists) {
				t.Fatalf("Init over %s: err = %v, want ErrExists", name, err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("Init wrote files: %v", entries)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(got, old) {
				t.Errorf("%s changed", name)
			}
		})
	}
	t.Run("whole CA", func(t *testing.T) {
		c, dir := newTestCA(t, ECDSAP256)
		if _, err := Init(dir, InitConfig{}); !errors.Is(err, ErrExists) {
			t.Fatalf("second Init: err = %v, want ErrExists", err)
		}
		loaded, err := Load(dir, testPassphrase)
		if err != nil || !loaded.Root().Equal(c.Root()) {
			t.Fatalf("CA changed by a refused Init: %v", err)
		}
	})
}

func TestInitDirectories(t *testing.T) {
	t.Run("empty dir is used", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Init(dir, InitConfig{Passphrase: testPassphrase, KDFCost: MinKDFCost}); err != nil {
			t.Fatal(err)
		}
		checkPerm(t, dir, 0o700)
		if _, err := Load(dir, testPassphrase); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("other files are kept", func(t *testing.T) {
		dir := t.TempDir()
		other := filepath.Join(dir, "passphrase")
		if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Init(dir, InitConfig{KDFCost: MinKDFCost}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(other); err != nil {
			t.Errorf("other file gone: %v", err)
		}
		if _, err := Load(dir, nil); err != nil {
			t.Fatal(err)
		}
		leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".*init-*"))
		if len(leftovers) > 0 {
			t.Errorf("staging directories left: %v", leftovers)
		}
	})
	t.Run("nested missing parent", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data", "ca")
		if _, err := Init(dir, InitConfig{KDFCost: MinKDFCost}); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(filepath.Dir(dir))
		if len(entries) != 1 {
			t.Errorf("parent holds %d entries, want only ca", len(entries))
		}
	})
}

func TestLoadErrors(t *testing.T) {
	c, dir := newTestCA(t, ECDSAP256)
	snapshot := func() map[string][]byte {
		m := map[string][]byte{}
		for _, f := range caFiles() {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			m[f] = b
		}
		return m
	}
	before := snapshot()

	if _, err := Load(dir, []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: err = %v, want ErrWrongPassphrase", err)
	}
	if _, err := Load(dir, nil); !errors.Is(err, ErrPassphraseRequired) {
		t.Errorf("no passphrase: err = %v, want ErrPassphraseRequired", err)
	}
	if err := mtlsid.ErrorKind(ErrWrongPassphrase); err != mtlsid.KindUnauthorized {
		t.Errorf("ErrWrongPassphrase kind = %v", err)
	}
	after := snapshot()
	for f := range before {
		if !bytes.Equal(before[f], after[f]) {
			t.Errorf("%s changed by a failed Load", f)
		}
	}

	if _, err := Load(filepath.Join(t.TempDir(), "nope"), testPassphrase); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dir: err = %v, want fs.ErrNotExist", err)
	}

	// The root key is not needed online.
	if err := os.Remove(filepath.Join(dir, RootKeyFile)); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(dir, testPassphrase)
	if err != nil {
		t.Fatalf("Load without root.key: %v", err)
	}
	if !loaded.Issuer().Equal(c.Issuer()) {
		t.Error("wrong issuer")
	}

	// An issuer key that does not belong to the issuer certificate.
	_, otherDir := newTestCA(t, ECDSAP256)
	key, _ := os.ReadFile(filepath.Join(otherDir, IssuerKeyFile))
	if err := os.WriteFile(filepath.Join(dir, IssuerKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, testPassphrase); err == nil {
		t.Error("Load accepted an issuer key of another CA")
	}
}

func TestLoadPlainKeyWithPassphrase(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, InitConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, pass := range [][]byte{nil, testPassphrase} {
		c, err := Load(dir, pass)
		if err != nil {
			t.Fatalf("Load(%q): %v", pass, err)
		}
		if c.KeyEncrypted() {
			t.Error("KeyEncrypted = true for a plain key")
		}
	}
}

func TestInitConfig(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c, err := Init(t.TempDir(), InitConfig{
		Name:           "Acme",
		Organization:   "Acme Corp",
		Country:        "DE",
		RootLifetime:   2 * year,
		IssuerLifetime: 5 * year, // longer than the root: clamped
		Now:            fixedClock(now),
		KDFCost:        MinKDFCost,
	})
	if err != nil {
		t.Fatal(err)
	}
	root, issuer := c.Root(), c.Issuer()
	if root.Subject.CommonName != "Acme Root CA" || root.Subject.Organization[0] != "Acme Corp" || root.Subject.Country[0] != "DE" {
		t.Errorf("root subject = %v", root.Subject)
	}
	if want := now.Add(-backdate); !root.NotBefore.Equal(want) {
		t.Errorf("root NotBefore = %v, want %v", root.NotBefore, want)
	}
	if want := now.Add(-backdate + 2*year - time.Second); !root.NotAfter.Equal(want) {
		t.Errorf("root NotAfter = %v, want %v", root.NotAfter, want)
	}
	if !issuer.NotAfter.Equal(root.NotAfter) {
		t.Errorf("issuer NotAfter %v not clamped to root's %v", issuer.NotAfter, root.NotAfter)
	}
	lintCert(t, root)
	lintCert(t, issuer, lintIssuerAllowed...)

	for _, bad := range []InitConfig{
		{KeyType: "dsa-1024"},
		{Country: "Germany"},
		{RootLifetime: -time.Hour},
	} {
		if _, err := Init(t.TempDir(), bad); mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
			t.Errorf("Init(%+v): err = %v, want KindInvalid", bad, err)
		}
	}
}

func TestWithConfig(t *testing.T) {
	c, _ := newTestCA(t, ECDSAP256)
	for _, bad := range []Config{
		{OCSPURL: "/ca/ocsp"},
		{CRLURL: "ldap://x/crl"},
		{OCSPURL: "https://ca.example.com/ca/ocsp"},
		{IssuerURL: "http://"},
		{DeviceLifetime: -1},
	} {
		if _, err := c.WithConfig(bad); mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
			t.Errorf("WithConfig(%+v): err = %v, want KindInvalid", bad, err)
		}
	}
	c2, err := c.WithConfig(Config{DeviceLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if c.Config().DeviceLifetime == time.Hour || c2.Config().DeviceLifetime != time.Hour {
		t.Error("WithConfig changed the original or did not apply")
	}
}

func nextCertDER(t *testing.T, rest []byte) ([]byte, []byte) {
	t.Helper()
	block, rest := pem.Decode(rest)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no CERTIFICATE block in %q", rest)
	}
	return block.Bytes, rest
}
