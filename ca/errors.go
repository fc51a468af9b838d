package ca

import "github.com/mtlsid/mtlsid"

// Sentinels for the conditions callers test for with errors.Is.
var (
	// ErrPassphraseRequired: a key is encrypted and no passphrase was given.
	ErrPassphraseRequired = &mtlsid.Error{Kind: mtlsid.KindUnauthorized, Message: "ca: the key is encrypted and no passphrase was given"}
	// ErrWrongPassphrase: the passphrase does not open the key (or the
	// encrypted key was altered; the two cannot be told apart).
	ErrWrongPassphrase = &mtlsid.Error{Kind: mtlsid.KindUnauthorized, Message: "ca: wrong passphrase for the encrypted key"}
	// ErrExists: Init found CA files already in place.
	ErrExists = &mtlsid.Error{Kind: mtlsid.KindConflict, Message: "ca: a CA already exists"}
)
