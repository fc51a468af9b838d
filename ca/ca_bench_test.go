package ca

import (
	"testing"

	"github.com/mtlsid/mtlsid"
)

func BenchmarkIssueP256(b *testing.B) {
	c, _ := newTestCA(b, ECDSAP256)
	key, err := GenerateKey(ECDSAP256, nil)
	if err != nil {
		b.Fatal(err)
	}
	req := Request{Profile: mtlsid.ProfileDevice, PublicKey: key.Public(), CommonName: "laptop", DeviceType: mtlsid.DeviceDesktop}
	for b.Loop() {
		if _, err := c.Issue(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCSR(b *testing.B) {
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		b.Run(string(kt), func(b *testing.B) {
			key, err := GenerateKey(kt, nil)
			if err != nil {
				b.Fatal(err)
			}
			der := makeCSR(b, key)
			for b.Loop() {
				if _, err := ParseCSR(der); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseKeyDefaultCost is what `serve` pays at start to open the
// issuing key; it must stay well under 150 ms.
func BenchmarkParseKeyDefaultCost(b *testing.B) {
	key, err := GenerateKey(ECDSAP256, nil)
	if err != nil {
		b.Fatal(err)
	}
	data, err := MarshalKey(key, testPassphrase, nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ParseKey(data, testPassphrase); err != nil {
			b.Fatal(err)
		}
	}
}
