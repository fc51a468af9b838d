package sdk_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/store/sqlite"
)

func sqliteStore(t testing.TB) mtlsid.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "mtlsid.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func pemOf(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// nginxEscape escapes like nginx's $ssl_client_escaped_cert
// (ngx_escape_uri, NGX_ESCAPE_URI_COMPONENT) and Envoy's XFCC Cert:
// everything but unreserved characters is %XX, a space is %20.
func nginxEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}

// xfcc is what Envoy sends with forward_client_cert_details
// SANITIZE_SET and set_current_client_cert_details {subject, cert, uri}.
func xfcc(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return `By=spiffe://cluster.local/ns/default/sa/shop;Hash=` + hex.EncodeToString(sum[:]) +
		`;Cert="` + nginxEscape(pemOf(c)) + `";Subject="CN=` + c.Subject.CommonName + `";URI=`
}

// rfc9440Example is the Client-Cert field of RFC 9440, Appendix A
// (Figure 2): a certificate with serial 7 and CN "BC".
const rfc9440Example = `:MIIBqDCCAU6gAwIBAgIBBzAKBggqhkjOPQQDAjA6MRswGQYDVQQKDBJMZXQncyBBdXRoZW50aWNhdGUxGzAZBgNVBAMMEkxBIEludGVybWVkaWF0ZSBDQTAeFw0yMDAxMTQyMjU1MzNaFw0yMTAxMjMyMjU1MzNaMA0xCzAJBgNVBAMMAkJDMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8YnXXfaUgmnMtOXU/IncWalRhebrXmckC8vdgJ1p5Be5F/3YC8OthxM4+k1M6aEAEFcGzkJiNy6J84y7uzo9M6NyMHAwCQYDVR0TBAIwADAfBgNVHSMEGDAWgBRm3WjLa38lbEYCuiCPct0ZaSED2DAOBgNVHQ8BAf8EBAMCBsAwEwYDVR0lBAwwCgYIKwYBBQUHAwIwHQYDVR0RAQH/BBMwEYEPYmRjQGV4YW1wbGUuY29tMAoGCCqGSM49BAMCA0gAMEUCIBHda/r1vaL6G3VliL4/Di6YK0Q6bMjeSkC3dFCOOB8TAiEAx/kHSB4urmiZ0NX5r5XarmPk0wmuydBVoU4hBVZ1yhk=:`

// Envoy's documentation examples of x-forwarded-client-cert
// (configuration/http/http_conn_man/headers).
const (
	envoyOneCert  = `By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com`
	envoyTwoCerts = `By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com`
)

func rfcCert(t testing.TB) *x509.Certificate {
	c, err := sdk.ParseClientCert(rfc9440Example)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseClientCertRFC9440(t *testing.T) {
	c := rfcCert(t)
	if c.SerialNumber.String() != "7" || c.Subject.CommonName != "BC" {
		t.Errorf("serial %s CN %q", c.SerialNumber, c.Subject.CommonName)
	}
	chain, err := sdk.ParseClientCertChain(rfc9440Example + ", " + rfc9440Example)
	if err != nil || len(chain) != 2 {
		t.Errorf("chain: %v %d", err, len(chain))
	}
	for _, bad := range []string{"", ":", "::", "MIIB", ":not base64!:", ":bm90IGEgY2VydA==:"} {
		if _, err := sdk.ParseClientCert(bad); err == nil {
			t.Errorf("ParseClientCert(%q) accepted", bad)
		}
	}
}

func TestParseXFCCEnvoyExamples(t *testing.T) {
	els, err := sdk.ParseXFCC(envoyOneCert)
	if err != nil || len(els) != 1 {
		t.Fatalf("one cert: %v %+v", err, els)
	}
	if els[0].Subject != "/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client" || els[0].URI != "http://testclient.lyft.com" || els[0].Hash[:6] != "468ed3" {
		t.Errorf("one cert: %+v", els[0])
	}
	els, err = sdk.ParseXFCC(envoyTwoCerts)
	if err != nil || len(els) != 2 || els[1].By != "http://backend.lyft.com" {
		t.Fatalf("two certs: %v %+v", err, els)
	}
	// With the certificate (set_current_client_cert_details cert: true).
	c := rfcCert(t)
	sum := sha256.Sum256(c.Raw)
	v := `By=http://frontend.lyft.com;Hash=` + hex.EncodeToString(sum[:]) + `;Cert="` + nginxEscape(pemOf(c)) + `";Subject="/CN=BC";DNS=a.example;DNS=b.example`
	els, err = sdk.ParseXFCC(v)
	if err != nil || len(els) != 1 || len(els[0].DNS) != 2 || !strings.HasPrefix(els[0].Cert, "-----BEGIN CERTIFICATE-----\n") {
		t.Fatalf("with Cert: %v %+v", err, els)
	}
	// Quoted values with escaped quotes, commas and semicolons.
	els, err = sdk.ParseXFCC(`Subject="CN=a \"b\", O=c;d";URI=x,By=y`)
	if err != nil || len(els) != 2 || els[0].Subject != `CN=a "b", O=c;d` || els[1].By != "y" {
		t.Fatalf("quoted: %v %+v", err, els)
	}
	for _, bad := range []string{"", "By", `Subject="open`, "By=x;;", "=x"} {
		if _, err := sdk.ParseXFCC(bad); err == nil {
			t.Errorf("ParseXFCC(%q) accepted", bad)
		}
	}
}

func TestParseEscapedPEM(t *testing.T) {
	c := rfcCert(t)
	for name, v := range map[string]string{
		"ssl_client_escaped_cert": nginxEscape(pemOf(c)),
		"ssl_client_cert (tabs)":  strings.ReplaceAll(strings.TrimSuffix(pemOf(c), "\n"), "\n", "\n\t"),
	} {
		got, err := sdk.ParseEscapedPEM(v)
		if err != nil || got.SerialNumber.String() != "7" {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := sdk.ParseEscapedPEM("%ZZ"); err == nil {
		t.Error("bad escape accepted")
	}
}

func TestParseTraefikCert(t *testing.T) {
	c := rfcCert(t)
	// Traefik: the PEM without delimiters and newlines, URL-escaped;
	// a chain is comma-separated after the client's certificate.
	v := url.QueryEscape(b64(c.Raw)) + "," + url.QueryEscape(b64(c.Raw))
	got, err := sdk.ParseTraefikCert(v)
	if err != nil || got.SerialNumber.String() != "7" {
		t.Fatalf("traefik: %v", err)
	}
	if _, err := sdk.ParseTraefikCert("bm90IGEgY2VydA%3D%3D"); err == nil {
		t.Error("garbage accepted")
	}
}

func TestParseSerial(t *testing.T) {
	for in, want := range map[string]string{"7": "7", "0x0a": "10", " 255 ": "255", "0XFF": "255"} {
		if got, err := sdk.ParseSerial(in); err != nil || got != want {
			t.Errorf("ParseSerial(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0", "-1", "12ab", "0x", "0xg", strings.Repeat("9", 60), "0x" + strings.Repeat("f", 41)} {
		if _, err := sdk.ParseSerial(bad); err == nil {
			t.Errorf("ParseSerial(%q) accepted", bad)
		}
	}
}

func FuzzParseClientCert(f *testing.F) {
	f.Add(rfc9440Example)
	f.Add(":" + strings.Repeat("A", 100) + ":")
	f.Fuzz(func(t *testing.T, v string) {
		c, err := sdk.ParseClientCert(v)
		if err == nil && c == nil {
			t.Fatal("nil certificate without error")
		}
		_, _ = sdk.ParseClientCertChain(v)
	})
}

func FuzzParseXFCC(f *testing.F) {
	f.Add(envoyOneCert)
	f.Add(envoyTwoCerts)
	f.Add(`Subject="CN=a \"b\", O=c;d";URI=x,By=y;Cert="%2D%2D"`)
	f.Fuzz(func(t *testing.T, v string) {
		els, err := sdk.ParseXFCC(v)
		if err == nil && len(els) == 0 {
			t.Fatal("no element without error")
		}
	})
}

func FuzzParseEscapedPEM(f *testing.F) {
	f.Add("-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A")
	f.Add("-----BEGIN CERTIFICATE-----\n\tMIIB\n\t-----END CERTIFICATE-----")
	f.Fuzz(func(t *testing.T, v string) { _, _ = sdk.ParseEscapedPEM(v) })
}

func FuzzParseTraefikCert(f *testing.F) {
	f.Add("MIIB%2Bxyz,MIIC")
	f.Fuzz(func(t *testing.T, v string) { _, _ = sdk.ParseTraefikCert(v) })
}

func FuzzParseSerial(f *testing.F) {
	f.Add("0x1f")
	f.Add("12345678901234567890")
	f.Fuzz(func(t *testing.T, v string) {
		s, err := sdk.ParseSerial(v)
		if err != nil {
			return
		}
		if again, err := sdk.ParseSerial(s); err != nil || again != s {
			t.Fatalf("%q -> %q -> %q, %v", v, s, again, err)
		}
	})
}

func FuzzReadEvents(f *testing.F) {
	f.Add("retry: 1000\n: hi\n\nevent: revoked\ndata: 12\n\n")
	f.Fuzz(func(t *testing.T, v string) {
		_ = sdk.ReadEvents(strings.NewReader(v), func(event, data string) {})
	})
}
