package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/ca"
)

// runCA handles `mtlsid ca init`.
func runCA(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "init" {
		return &usageError{"usage: mtlsid ca init [--data DIR] [--key-type TYPE] [--root-lifetime D] [--issuer-lifetime D]"}
	}
	var d dataFlags
	fs := newFlags("ca init", stderr)
	d.register(fs)
	keyType := fs.String("key-type", string(ca.DefaultKeyType), "key type: "+keyTypeList())
	rootTTL := fs.Duration("root-lifetime", ca.DefaultRootLifetime, "root CA lifetime")
	issuerTTL := fs.Duration("issuer-lifetime", ca.DefaultIssuerLifetime, "issuing CA lifetime")
	name := fs.String("name", ca.DefaultName, "CA name (subject CN prefix and O)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	kt, err := ca.ParseKeyType(*keyType)
	if err != nil {
		return &usageError{err.Error()}
	}
	log := newLogger(stderr, 0, false)
	if ca.Exists(d.caDir()) {
		return fmt.Errorf("a CA already exists in %s; nothing was changed", d.caDir())
	}
	store, _, err := d.openStore(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	pass, err := d.passphrase(true, log)
	if err != nil {
		return err
	}
	c, err := ca.Init(d.caDir(), ca.InitConfig{KeyType: kt, RootLifetime: *rootTTL, IssuerLifetime: *issuerTTL, Name: *name, Passphrase: pass})
	if err != nil {
		return fmt.Errorf("create CA in %s: %w", d.caDir(), err)
	}
	auth, err := authority.New(authority.Config{Store: store, CA: c})
	if err != nil {
		return err
	}
	defer auth.Close()
	if err := auth.Audit(ctx, mtlsid.AuditEvent{Type: mtlsid.AuditCACreated, Actor: "local", Subject: c.RootFingerprint(), Detail: "key_type=" + string(kt)}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "CA created in %s (%s)\nroot fingerprint (SHA-256): %s\nroot valid until %s, issuing CA until %s\n",
		d.caDir(), kt, c.RootFingerprint(), c.Root().NotAfter.Format(time.DateOnly), c.Issuer().NotAfter.Format(time.DateOnly))
	return printBootstrap(ctx, auth, stdout, "https://localhost:8443", d.data)
}

// runToken handles `mtlsid token create`: locally on the data directory,
// or through the server with --server (see isRemote).
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return &usageError{"usage: mtlsid token create [--data DIR] [--purpose device|agent] [--label TEXT] [--ttl 24h]\n" +
			"   or: mtlsid token create --server URL [--dir DIR] [--name NAME] [--label TEXT] [--ttl 24h] [--service SERVICE [--org ORG]]"}
	}
	if isRemote(args[1:]) {
		return runRemoteToken(ctx, args[1:], stdout, stderr)
	}
	var d dataFlags
	fs := newFlags("token create", stderr)
	d.register(fs)
	purpose := fs.String("purpose", "device", "what the token enrolls: device (a person's device) or agent (a service agent)")
	label := fs.String("label", "", "what the token is for, for the audit log")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token stays valid")
	quiet := fs.Bool("q", false, "print only the token")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	auth, closeAll, err := openLocalAuthority(ctx, &d, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	secret, tok, err := auth.CreateToken(ctx, authority.TokenRequest{Purpose: mtlsid.TokenPurpose(*purpose), Label: *label, Lifetime: *ttl})
	if err != nil {
		return err
	}
	if *quiet {
		fmt.Fprintln(stdout, secret)
		return nil
	}
	fmt.Fprintf(stdout, "%s\n\none-time %s token, valid until %s\nenroll with: mtlsid enroll %s --server https://localhost:8443 --ca %s/ca/root.crt\n",
		secret, tok.Purpose, tok.ExpiresAt.Local().Format(time.RFC1123), secret, d.data)
	return nil
}

// runAudit handles `mtlsid audit verify`.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return &usageError{"usage: mtlsid audit verify [--data DIR | --database URL]"}
	}
	var d dataFlags
	fs := newFlags("audit verify", stderr)
	d.register(fs)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	store, name, err := d.openStore(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	n, err := authority.VerifyAudit(ctx, store)
	var broken *mtlsid.AuditChainError
	if errors.As(err, &broken) {
		fmt.Fprintf(stdout, "audit chain BROKEN in %s after %d good entries: %v\n", name, n, broken)
		return fmt.Errorf("audit chain broken at entry %d", broken.Seq)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "audit chain intact: %d entries verified in %s\n", n, name)
	return nil
}

// openLocalAuthority opens the store and CA of a data directory for the
// operator's local commands.
func openLocalAuthority(ctx context.Context, d *dataFlags, stderr io.Writer) (*authority.Authority, func(), error) {
	log := newLogger(stderr, 4, false) // warnings and errors only
	store, _, err := d.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	c, err := d.loadCA(log)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	auth, err := authority.New(authority.Config{Store: store, CA: c, Logger: log})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return auth, func() { auth.Close(); store.Close() }, nil
}
