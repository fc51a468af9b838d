package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func TestMarshalParseKey(t *testing.T) {
	keys := testKeys(t, ECDSAP256, ECDSAP384, RSA2048)
	for kt, key := range keys {
		t.Run(string(kt), func(t *testing.T) {
			for _, pass := range [][]byte{nil, testPassphrase} {
				data, err := MarshalKeyCost(key, pass, MinKDFCost, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got := IsEncryptedKey(data); got != (pass != nil) {
					t.Errorf("IsEncryptedKey = %v with passphrase %q", got, pass)
				}
				block, _ := pem.Decode(data)
				wantType := "PRIVATE KEY"
				if pass != nil {
					wantType = "MTLSID ENCRYPTED PRIVATE KEY"
					if bytes.Contains(data, mustPKCS8(t, key)[8:40]) {
						t.Error("encrypted file holds key bytes in the clear")
					}
				}
				if block.Type != wantType {
					t.Errorf("block type %q, want %q", block.Type, wantType)
				}
				got, err := ParseKey(data, pass)
				if err != nil {
					t.Fatal(err)
				}
				if !samePublicKey(got.Public(), key.Public()) {
					t.Error("round trip changed the key")
				}
			}
		})
	}
}

func mustPKCS8(t *testing.T, key any) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParseKeyErrors(t *testing.T) {
	key := testKeys(t, ECDSAP256)[ECDSAP256]
	enc, err := MarshalKeyCost(key, testPassphrase, MinKDFCost, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKey(enc, nil); !errors.Is(err, ErrPassphraseRequired) {
		t.Errorf("no passphrase: %v", err)
	}
	if _, err := ParseKey(enc, []byte("Correct horse battery staple")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	msg := ErrWrongPassphrase.Error()
	if msg != strings.ToLower(msg[:1])+msg[1:] || !strings.Contains(msg, "passphrase") {
		t.Errorf("message %q", msg)
	}

	// A flipped ciphertext bit cannot be told from a wrong passphrase.
	block, _ := pem.Decode(enc)
	block.Bytes[len(block.Bytes)/2] ^= 1
	if _, err := ParseKey(pem.EncodeToMemory(block), testPassphrase); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("tampered: %v", err)
	}
	block.Bytes[len(block.Bytes)/2] ^= 1

	// A cost that would take gigabytes is refused before any work.
	block.Headers["Scrypt-Log-N"] = "30"
	if _, err := ParseKey(pem.EncodeToMemory(block), testPassphrase); err == nil || errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("huge cost: %v", err)
	}

	p521, _ := ecdsa.GenerateKey(elliptic.P521(), nil)
	_, edKey, _ := ed25519.GenerateKey(nil)
	for name, data := range map[string][]byte{
		"empty":           nil,
		"garbage":         []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		"cert":            []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
		"pkcs8 encrypted": pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}),
		"p521":            pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, p521)}),
		"ed25519":         pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, edKey)}),
	} {
		if _, err := ParseKey(data, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	if _, err := MarshalKeyCost(key, testPassphrase, 4, nil); err == nil {
		t.Error("MarshalKeyCost accepted a cost below MinKDFCost")
	}
}

func TestParseKeyOtherEncodings(t *testing.T) {
	keys := testKeys(t, ECDSAP256, RSA2048)
	ecDER, _ := x509.MarshalECPrivateKey(keys[ECDSAP256].(*ecdsa.PrivateKey))
	for name, data := range map[string][]byte{
		"sec1":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}),
		"pkcs1": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(keys[RSA2048].(*rsa.PrivateKey))}),
	} {
		if _, err := ParseKey(data, nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
