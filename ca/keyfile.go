package ca

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/crypto/scrypt"
)

// PEM block types of keys at rest.
const (
	encryptedKeyBlock = "MTLSID ENCRYPTED PRIVATE KEY"
	plainKeyBlock     = "PRIVATE KEY"
)

// KDF costs, as log2 of scrypt's N (r = 8, p = 1).
//
// 14 takes about 60 ms and 16 MiB on a small 2-core machine: `serve`
// decrypts one key at start and must be up in 300 ms, and a passphrase
// an operator chose is expected to be long, so the KDF only has to make
// each guess cost something, not make a weak one safe. The value used is
// written in the PEM headers, so raising the default later keeps old
// files readable.
const (
	DefaultKDFCost = 14
	MinKDFCost     = 10 // below this the KDF protects nothing; tests use it
	maxKDFCost     = 20 // bounds what a tampered header can make us allocate
)

const (
	scryptR    = 8
	scryptP    = 1
	saltSize   = 16
	aesKeySize = 32
)

// keyAAD binds the ciphertext to this format and version, so the bytes
// cannot be replayed as anything else.
var keyAAD = []byte("mtlsid encrypted private key v1")

// MarshalKey encodes key as PEM. With a nil or empty passphrase it is a
// plain PKCS#8 "PRIVATE KEY"; otherwise it is PKCS#8 sealed with
// AES-256-GCM under a key derived from the passphrase by scrypt at
// DefaultKDFCost, with salt, cost and nonce in the PEM headers. rand (nil
// means crypto/rand) supplies the salt and nonce.
func MarshalKey(key crypto.Signer, passphrase []byte, rand io.Reader) ([]byte, error) {
	return MarshalKeyCost(key, passphrase, DefaultKDFCost, rand)
}

// MarshalKeyCost is MarshalKey with a chosen KDF cost (log2 of scrypt's N,
// from MinKDFCost to 20; zero means DefaultKDFCost).
func MarshalKeyCost(key crypto.Signer, passphrase []byte, cost int, rand io.Reader) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	defer clear(der)
	if len(passphrase) == 0 {
		return pem.EncodeToMemory(&pem.Block{Type: plainKeyBlock, Bytes: der}), nil
	}
	if cost == 0 {
		cost = DefaultKDFCost
	}
	if cost < MinKDFCost || cost > maxKDFCost {
		return nil, fmt.Errorf("marshal key: KDF cost %d out of range [%d, %d]", cost, MinKDFCost, maxKDFCost)
	}
	rand = randOrDefault(rand)
	salt := make([]byte, saltSize)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, fmt.Errorf("marshal key: read salt: %w", err)
	}
	aead, err := keyAEAD(passphrase, salt, cost, scryptR, scryptP)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, fmt.Errorf("marshal key: read nonce: %w", err)
	}
	block := &pem.Block{
		Type: encryptedKeyBlock,
		Headers: map[string]string{
			"KDF":          "scrypt",
			"Scrypt-Log-N": strconv.Itoa(cost),
			"Scrypt-R":     strconv.Itoa(scryptR),
			"Scrypt-P":     strconv.Itoa(scryptP),
			"Salt":         hex.EncodeToString(salt),
			"Cipher":       "AES-256-GCM",
			"Nonce":        hex.EncodeToString(nonce),
		},
		Bytes: aead.Seal(nil, nonce, der, keyAAD),
	}
	return pem.EncodeToMemory(block), nil
}

// ParseKey decodes a private key that MarshalKey wrote, or a plain PKCS#8,
// SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") PEM key.
//
// An encrypted key with no passphrase gives ErrPassphraseRequired; a
// passphrase that does not open it gives ErrWrongPassphrase. A plain key
// loads whether or not a passphrase was given: callers that want to warn
// about it ask IsEncryptedKey. The key must be one CheckPublicKey accepts.
func ParseKey(pemBytes, passphrase []byte) (crypto.Signer, error) {
	block, err := findKeyBlock(pemBytes)
	if err != nil {
		return nil, err
	}
	var key any
	switch block.Type {
	case encryptedKeyBlock:
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		der, err := openKey(block, passphrase)
		if err != nil {
			return nil, err
		}
		key, err = x509.ParsePKCS8PrivateKey(der)
		clear(der)
		if err != nil {
			return nil, fmt.Errorf("parse decrypted key: %w", err)
		}
	case plainKeyBlock:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse key: %T is not a signing key", key)
	}
	if err := CheckPublicKey(signer.Public()); err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	return signer, nil
}

// IsEncryptedKey reports whether pemBytes holds a key that MarshalKey
// encrypted.
func IsEncryptedKey(pemBytes []byte) bool {
	block, err := findKeyBlock(pemBytes)
	return err == nil && block.Type == encryptedKeyBlock
}

func findKeyBlock(data []byte) (*pem.Block, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key PEM block found")
		}
		switch block.Type {
		case encryptedKeyBlock, plainKeyBlock, "EC PRIVATE KEY", "RSA PRIVATE KEY":
			if _, legacy := block.Headers["DEK-Info"]; legacy {
				return nil, errors.New("legacy PEM encryption (DEK-Info) is not supported: re-encrypt the key with mtlsid")
			}
			return block, nil
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("PKCS#8 encrypted keys are not supported: re-encrypt the key with mtlsid")
		}
	}
}

func openKey(block *pem.Block, passphrase []byte) ([]byte, error) {
	h := block.Headers
	if h["KDF"] != "scrypt" || h["Cipher"] != "AES-256-GCM" {
		return nil, fmt.Errorf("encrypted key: unsupported KDF %q or cipher %q", h["KDF"], h["Cipher"])
	}
	cost, err1 := strconv.Atoi(h["Scrypt-Log-N"])
	r, err2 := strconv.Atoi(h["Scrypt-R"])
	p, err3 := strconv.Atoi(h["Scrypt-P"])
	salt, err4 := hex.DecodeString(h["Salt"])
	nonce, err5 := hex.DecodeString(h["Nonce"])
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return nil, fmt.Errorf("encrypted key: bad header: %w", err)
	}
	// Bounds keep a tampered header from asking for gigabytes or hours.
	if cost < 1 || cost > maxKDFCost || r < 1 || r > 32 || p < 1 || p > 16 || len(salt) < 8 {
		return nil, errors.New("encrypted key: KDF parameters out of range")
	}
	aead, err := keyAEAD(passphrase, salt, cost, r, p)
	if err != nil {
		return nil, fmt.Errorf("encrypted key: %w", err)
	}
	if len(nonce) != aead.NonceSize() {
		return nil, errors.New("encrypted key: bad nonce size")
	}
	der, err := aead.Open(nil, nonce, block.Bytes, keyAAD)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return der, nil
}

func keyAEAD(passphrase, salt []byte, cost, r, p int) (cipher.AEAD, error) {
	k, err := scrypt.Key(passphrase, salt, 1<<cost, r, p, aesKeySize)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	defer clear(k)
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}
