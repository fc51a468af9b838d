package sdk

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// These fuzz targets cover every forwarded-identity header dialect the
// middleware reads from a trusted proxy. Each checks, whatever the value:
// no panic; the refusal is the package's own error (errBadHeader, and
// errNoHeader / errHashDiffer where they apply) or, for a well-formed
// value that carries bytes which are not a certificate, exactly the
// x509 error for those bytes; the size limit holds; and what is accepted
// re-encodes in the same dialect to the same certificate.

// fuzzCert is a real certificate, as a proxy would forward it.
func fuzzCert(tb testing.TB) *x509.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).Lsh(big.NewInt(0x5eed), 100), Subject: pkix.Name{CommonName: "laptop", OrganizationalUnit: []string{"Desktop"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func fuzzPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// escapeAll percent-encodes every byte but letters and digits, as nginx's
// $ssl_client_escaped_cert and Envoy's Cert do (and more).
func escapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}

func sfItem(der []byte) string { return ":" + base64.StdEncoding.EncodeToString(der) + ":" }

// sameErr reports whether two errors are both nil or say the same.
func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Error() == b.Error()
}

// FuzzClientCert covers RFC 9440's Client-Cert and Client-Cert-Chain.
func FuzzClientCert(f *testing.F) {
	c := fuzzCert(f)
	item := sfItem(c.Raw)
	for _, s := range []string{item, " " + item + " ", item + ", " + item, item + ";a=1, " + item, ":" + base64.StdEncoding.EncodeToString([]byte("not a certificate")) + ":",
		":", "::", ":AAAA", "AAAA:", ":!!!!:", ",", item + ",", ":" + strings.Repeat("A", maxHeaderCert) + ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := ParseClientCert(v)
		der, sfErr := sfBinary(strings.TrimSpace(v))
		switch {
		case sfErr != nil:
			if err != errBadHeader || got != nil {
				t.Fatalf("malformed value: %v, want errBadHeader", err)
			}
		default:
			want, wantErr := x509.ParseCertificate(der)
			if !sameErr(err, wantErr) {
				t.Fatalf("error %v, want the x509 error %v", err, wantErr)
			}
			if err == nil && (!bytes.Equal(got.Raw, der) || !bytes.Equal(want.Raw, got.Raw)) {
				t.Fatal("certificate differs from the bytes sent")
			}
		}
		if err == nil {
			again, err := ParseClientCert(sfItem(got.Raw))
			if err != nil || !bytes.Equal(again.Raw, got.Raw) {
				t.Fatalf("re-encoded Client-Cert: %v", err)
			}
		}

		chain, err := ParseClientCertChain(v)
		if err != nil {
			if chain != nil {
				t.Fatal("chain returned with an error")
			}
			return
		}
		if len(chain) != strings.Count(v, ",")+1 {
			t.Fatalf("%d certificates from %d items", len(chain), strings.Count(v, ",")+1)
		}
		items := make([]string, len(chain))
		for i, cc := range chain {
			items[i] = sfItem(cc.Raw)
		}
		again, err := ParseClientCertChain(strings.Join(items, ", "))
		if err != nil || len(again) != len(chain) {
			t.Fatalf("re-encoded chain: %v", err)
		}
		for i := range chain {
			if !bytes.Equal(again[i].Raw, chain[i].Raw) {
				t.Fatalf("chain item %d changed", i)
			}
		}
	})
}

// encodeXFCC writes elements as Envoy would, quoting every value and
// escaping Cert and Chain, so that ParseXFCC must give them back.
func encodeXFCC(els []XFCCElement) string {
	quote := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	var parts []string
	for _, el := range els {
		var kv []string
		add := func(k, v string) {
			if v != "" {
				kv = append(kv, k+"="+quote(v))
			}
		}
		add("By", el.By)
		add("Hash", el.Hash)
		add("Cert", escapeAll(el.Cert))
		add("Chain", escapeAll(el.Chain))
		add("Subject", el.Subject)
		add("URI", el.URI)
		for _, d := range el.DNS {
			kv = append(kv, "DNS="+quote(d))
		}
		if len(kv) == 0 {
			kv = append(kv, `Unknown=""`) // an element with nothing we read
		}
		parts = append(parts, strings.Join(kv, ";"))
	}
	return strings.Join(parts, ",")
}

// FuzzXFCC covers Envoy's X-Forwarded-Client-Cert: the element parser and
// the choice of the certificate (last element, Hash checked).
func FuzzXFCC(f *testing.F) {
	c := fuzzCert(f)
	sum := sha256.Sum256(c.Raw)
	hash := hex.EncodeToString(sum[:])
	cert := escapeAll(fuzzPEM(c))
	for _, s := range []string{
		`By=spiffe://cluster.local/ns/default/sa/shop;Hash=` + hash + `;Cert="` + cert + `";Subject="CN=laptop";URI=`,
		`By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com`,
		`By=a;Cert=` + cert + `,By=b;Hash=` + strings.ToUpper(hash) + `;Cert="` + cert + `";DNS=a.example;DNS=b.example`,
		`Hash=00;Cert="` + cert + `"`, `Cert="` + cert, `Cert=%ZZ`, `Subject="a\"b\\c";Chain=` + cert,
		`=x`, `a`, `a=b;`, `a=b,`, `a="b"c`, `;`, `,`, ``, `By="`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		els, err := ParseXFCC(v)
		if err != nil {
			if err != errBadHeader || els != nil {
				t.Fatalf("refusal %v, want errBadHeader", err)
			}
		} else {
			if len(v) > 4*maxHeaderCert {
				t.Fatalf("accepted %d bytes", len(v))
			}
			if len(els) == 0 {
				t.Fatal("accepted without an element")
			}
			if enc := encodeXFCC(els); len(enc) <= 4*maxHeaderCert {
				again, err := ParseXFCC(enc)
				if err != nil || !reflect.DeepEqual(again, els) {
					t.Fatalf("round trip:\n%#v\n%q\n%#v (%v)", els, enc, again, err)
				}
			}
		}

		got, cerr := xfccCert(v)
		switch {
		case err != nil:
			if cerr != err {
				t.Fatalf("xfccCert: %v, want %v", cerr, err)
			}
		case cerr == nil:
			last := els[len(els)-1]
			want, perr := parsePEMCert(last.Cert)
			if perr != nil || !bytes.Equal(want.Raw, got.Raw) {
				t.Fatal("certificate is not the last element's")
			}
			s := sha256.Sum256(got.Raw)
			if last.Hash != "" && !strings.EqualFold(last.Hash, hex.EncodeToString(s[:])) {
				t.Fatal("accepted a Hash that does not match")
			}
		case errors.Is(cerr, errNoHeader):
			if els[len(els)-1].Cert != "" {
				t.Fatal("errNoHeader with a Cert")
			}
		case errors.Is(cerr, errHashDiffer):
			if els[len(els)-1].Hash == "" {
				t.Fatal("errHashDiffer without a Hash")
			}
		default:
			_, perr := parsePEMCert(els[len(els)-1].Cert)
			if !sameErr(cerr, perr) {
				t.Fatalf("xfccCert: %v, want the certificate's error %v", cerr, perr)
			}
		}
	})
}

// FuzzEscapedPEM covers nginx's $ssl_client_escaped_cert and the legacy
// tab-indented $ssl_client_cert.
func FuzzEscapedPEM(f *testing.F) {
	c := fuzzCert(f)
	p := fuzzPEM(c)
	for _, s := range []string{escapeAll(p), p, strings.ReplaceAll(strings.TrimSuffix(p, "\n"), "\n", "\n\t"),
		url.PathEscape(p), "%", "%zz", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "",
		strings.ReplaceAll(escapeAll(p), "CERTIFICATE", "PRIVATE%20KEY")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := ParseEscapedPEM(v)
		if err != nil {
			if got != nil {
				t.Fatal("certificate returned with an error")
			}
			if len(v) > maxHeaderCert && err != errBadHeader {
				t.Fatalf("%d bytes: %v, want errBadHeader", len(v), err)
			}
			return
		}
		if len(v) > maxHeaderCert {
			t.Fatalf("accepted %d bytes", len(v))
		}
		pemText := fuzzPEM(got)
		legacy := strings.ReplaceAll(strings.TrimSuffix(pemText, "\n"), "\n", "\n\t")
		for _, form := range []string{escapeAll(pemText), legacy} {
			again, err := ParseEscapedPEM(form)
			if err != nil || !bytes.Equal(again.Raw, got.Raw) {
				t.Fatalf("re-encoded %q: %v", form, err)
			}
		}
	})
}

// FuzzTraefikCert covers Traefik's X-Forwarded-Tls-Client-Cert.
func FuzzTraefikCert(f *testing.F) {
	c := fuzzCert(f)
	b64 := base64.StdEncoding.EncodeToString(c.Raw)
	for _, s := range []string{url.QueryEscape(b64), b64, url.QueryEscape(b64) + "," + url.QueryEscape(b64), escapeAll(fuzzPEM(c)),
		"%zz", "AAAA", ",", "", "+/=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := ParseTraefikCert(v)
		if err != nil {
			if got != nil {
				t.Fatal("certificate returned with an error")
			}
			if len(v) > maxHeaderCert && err != errBadHeader {
				t.Fatalf("%d bytes: %v, want errBadHeader", len(v), err)
			}
			return
		}
		if len(v) > maxHeaderCert {
			t.Fatalf("accepted %d bytes", len(v))
		}
		b := base64.StdEncoding.EncodeToString(got.Raw)
		for _, form := range []string{url.QueryEscape(b), url.QueryEscape(b) + "," + v, escapeAll(fuzzPEM(got))} {
			if len(form) > maxHeaderCert {
				continue
			}
			again, err := ParseTraefikCert(form)
			if err != nil || !bytes.Equal(again.Raw, got.Raw) {
				t.Fatalf("re-encoded %q: %v", form, err)
			}
		}
	})
}

// FuzzSerial covers X-mTLS-ID: what is accepted is a positive serial of
// at most 160 bits, returned in canonical decimal, which reads back the
// same in decimal and in hex.
func FuzzSerial(f *testing.F) {
	for _, s := range []string{"1", "0x1", "0X1f", " 42 ", "0", "-1", "+1", "0x", "", "1_000", "١٢", "0x" + strings.Repeat("f", 40), "0x1" + strings.Repeat("0", 40), strings.Repeat("9", 49), "00000000000000000000000000000000000000000000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := ParseSerial(v)
		if err != nil {
			if err != errBadHeader || got != "" {
				t.Fatalf("refusal %q %v, want errBadHeader", got, err)
			}
			return
		}
		n, ok := new(big.Int).SetString(got, 10)
		if !ok || n.Sign() <= 0 || n.BitLen() > 160 || n.String() != got {
			t.Fatalf("%q gave %q: not a canonical positive serial of at most 160 bits", v, got)
		}
		for _, form := range []string{got, "0x" + n.Text(16), "0X" + strings.ToUpper(n.Text(16))} {
			if again, err := ParseSerial(form); err != nil || again != got {
				t.Fatalf("%q reads back as %q (%v), want %q", form, again, err, got)
			}
		}
	})
}

// FuzzFromHeaders covers the middleware's reading of a trusted proxy's
// headers: the first dialect present decides (a malformed one is an error,
// never skipped for the next), the serial is the certificate's, the
// trusted list names every identity header present, and stripping leaves
// none of them.
func FuzzFromHeaders(f *testing.F) {
	c := fuzzCert(f)
	sum := sha256.Sum256(c.Raw)
	xfcc := `Hash=` + hex.EncodeToString(sum[:]) + `;Cert="` + escapeAll(fuzzPEM(c)) + `"`
	esc := escapeAll(fuzzPEM(c))
	tra := url.QueryEscape(base64.StdEncoding.EncodeToString(c.Raw))
	f.Add(sfItem(c.Raw), "", "", "", "", "")
	f.Add("", xfcc, "", "", "", "")
	f.Add("", "", tra, "", "", "")
	f.Add("", "", "", esc, "", "")
	f.Add("", "", "", "", "0x10", "")
	f.Add(":bad:", xfcc, tra, esc, "1", "spoofed")
	f.Add("", "Hash=00;"+xfcc[strings.IndexByte(xfcc, ';')+1:], "", esc, "", "")
	f.Add("", "", "", "", "-1", "x")
	f.Fuzz(func(t *testing.T, cc, xf, traefik, nginx, id, other string) {
		h := http.Header{}
		set := func(k, v string) {
			if v != "" {
				h.Set(k, v)
			}
		}
		set(HeaderClientCert, cc)
		set(HeaderXFCC, xf)
		set(HeaderTraefik, traefik)
		set(HeaderNginx, nginx)
		set(HeaderMTLSID, id)
		set(HeaderMTLSRoles, other)
		set("X-Unrelated", other)
		fwd, err := fromHeaders(h, HeaderNginx)

		// What the dialect that should decide says.
		var want *forwarded
		var wantErr error
		switch {
		case cc != "":
			want, wantErr = certForwarded(HeaderClientCert, cc, ParseClientCert)
		case xf != "":
			want, wantErr = certForwarded(HeaderXFCC, xf, xfccCert)
		case traefik != "":
			want, wantErr = certForwarded(HeaderTraefik, traefik, ParseTraefikCert)
		case nginx != "":
			want, wantErr = certForwarded(HeaderNginx, nginx, ParseEscapedPEM)
		case id != "":
			s, err := ParseSerial(id)
			want, wantErr = &forwarded{serial: s, header: HeaderMTLSID}, err
		default:
			wantErr = errNoHeader
		}
		if !sameErr(err, wantErr) {
			t.Fatalf("error %v, want %v", err, wantErr)
		}
		if err != nil {
			if fwd != nil {
				t.Fatal("result with an error")
			}
		} else {
			if fwd.header != want.header || fwd.serial != want.serial || (fwd.cert == nil) != (want.cert == nil) ||
				fwd.cert != nil && !bytes.Equal(fwd.cert.Raw, want.cert.Raw) {
				t.Fatalf("got %s %s, want %s %s", fwd.header, fwd.serial, want.header, want.serial)
			}
			if fwd.cert != nil && fwd.serial != fwd.cert.SerialNumber.String() {
				t.Fatal("serial is not the certificate's")
			}
			var present []string
			for k := range h {
				if identityHeaders[k] {
					present = append(present, k)
				}
			}
			slices.Sort(present)
			trusted := slices.Sorted(slices.Values(fwd.trusted))
			if !slices.Equal(present, trusted) {
				t.Fatalf("trusted headers %v, want %v", trusted, present)
			}
		}

		stripIdentityHeaders(h, HeaderNginx)
		for k := range h {
			if identityHeaders[k] {
				t.Fatalf("%s left after stripping", k)
			}
		}
		if other != "" && h.Get("X-Unrelated") != other {
			t.Fatal("stripping removed an unrelated header")
		}
	})
}

func certForwarded(name, v string, parse func(string) (*x509.Certificate, error)) (*forwarded, error) {
	c, err := parse(v)
	if err != nil {
		return nil, err
	}
	return &forwarded{cert: c, serial: c.SerialNumber.String(), header: name}, nil
}
