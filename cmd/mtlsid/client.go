package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/agent"
	"github.com/mtlsid/mtlsid/internal/atomicfile"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// clientFlags are the flags of the client commands.
type clientFlags struct {
	server  string
	caFile  string
	dir     string
	name    string
	verbose bool
	timeout time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	home, _ := os.UserHomeDir()
	host, _ := os.Hostname()
	server := os.Getenv("MTLSID_SERVER")
	if server == "" {
		server = "https://localhost:8443"
	}
	fs.StringVar(&c.server, "server", server, "authority URL ($MTLSID_SERVER)")
	fs.StringVar(&c.caFile, "ca", "", "PEM file of the CA to trust (default DIR/ca.pem if present, else the system store)")
	fs.StringVar(&c.dir, "dir", filepath.Join(home, ".mtlsid"), "identity directory")
	fs.StringVar(&c.name, "name", host, "device or agent name")
	fs.BoolVar(&c.verbose, "v", false, "print request and response bodies (they contain secrets)")
	fs.DurationVar(&c.timeout, "timeout", 40*time.Second, "request timeout")
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// base is the path prefix of this identity's files.
func (c *clientFlags) base() string {
	return filepath.Join(c.dir, unsafeFileChars.ReplaceAllString(c.name, "_"))
}

func (c *clientFlags) roots() (*x509.CertPool, error) {
	file := c.caFile
	if file == "" {
		if _, err := os.Stat(filepath.Join(c.dir, "ca.pem")); err == nil {
			file = filepath.Join(c.dir, "ca.pem")
		}
	}
	if file == "" {
		return nil, nil // system trust store
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemOrDER(b)) {
		return nil, fmt.Errorf("CA file %s holds no certificate", file)
	}
	return pool, nil
}

// pemOrDER returns b as PEM, converting a DER certificate (root.crt).
func pemOrDER(b []byte) []byte {
	if _, err := x509.ParseCertificate(b); err == nil {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b})
	}
	return b
}

// client returns a self-authority client; withCert adds this identity's
// certificate for the calls that need one.
func (c *clientFlags) client(withCert bool, stderr io.Writer) (*sdk.SelfClient, error) {
	hc, err := c.httpClient(withCert)
	if err != nil {
		return nil, err
	}
	sc := &sdk.SelfClient{URL: c.server, HTTP: hc}
	if c.verbose {
		sc.Trace = stderr
	}
	return sc, nil
}

// httpClient returns an HTTP client trusting the CA (see roots) and, with
// withCert, presenting this identity's certificate.
func (c *clientFlags) httpClient(withCert bool) (*http.Client, error) {
	roots, err := c.roots()
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if withCert {
		cert, err := tls.LoadX509KeyPair(c.base()+".cer", c.base()+".key")
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no identity %q in %s: enroll first (mtlsid enroll TOKEN), or pick one with --name/--dir", c.name, c.dir)
		}
		if err != nil {
			return nil, fmt.Errorf("load identity %q: %w", c.name, err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: c.timeout, Transport: &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}}, nil
}

// clientCommand parses a client command's flags. Commands that use an
// existing identity may have its name guessed (see pickName); enroll,
// which makes one, may not.
func clientCommand(name string, stderr io.Writer, args []string, extra func(*flag.FlagSet)) (*clientFlags, []string, error) {
	var c clientFlags
	fs := newFlags(name, stderr)
	c.register(fs)
	if extra != nil {
		extra(fs)
	}
	if err := parse(fs, args); err != nil {
		return nil, nil, err
	}
	if name != "enroll" {
		c.pickName()
	}
	return &c, fs.Args(), nil
}

// pickName keeps the flag's name, unless that identity does not exist and
// the directory holds exactly one other: then that one is meant.
func (c *clientFlags) pickName() {
	if _, err := os.Stat(c.base() + ".cer"); err == nil {
		return
	}
	m, _ := filepath.Glob(filepath.Join(c.dir, "*.cer"))
	if len(m) == 1 {
		c.name = strings.TrimSuffix(filepath.Base(m[0]), ".cer")
	}
}

func runEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var deviceType string
	c, rest, err := clientCommand("enroll", stderr, args, func(fs *flag.FlagSet) {
		fs.StringVar(&deviceType, "type", "", "device type: Desktop, Mobile, Browser, Agent, Server (default from the token)")
	})
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return &usageError{"usage: mtlsid enroll TOKEN [--server URL] [--ca FILE] [--dir DIR] [--name NAME]"}
	}
	if _, err := os.Stat(c.base() + ".cer"); err == nil {
		return fmt.Errorf("an identity named %q already exists in %s: choose another --name or --dir", c.name, c.dir)
	}
	key, csr, err := newKeyAndCSR(c.name)
	if err != nil {
		return err
	}
	sc, err := c.client(false, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := sc.Enroll(ctx, wire.Args{Authorization: rest[0], AgentName: c.name, DeviceType: deviceType, CSR: base64.StdEncoding.EncodeToString(csr)})
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	if err := c.save(key, res); err != nil {
		return err
	}
	if c.caFile != "" {
		b, err := os.ReadFile(c.caFile)
		if err != nil {
			return err
		}
		if err := atomicfile.Write(filepath.Join(c.dir, "ca.pem"), pemOrDER(b), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "enrolled %q: serial %s, valid until %s\nfiles: %s.{key,cer,chain.pem,p12,password}\n",
		res.Name, res.SerialNumber, time.UnixMilli(res.NotAfter).Format(time.RFC3339), c.base())
	return nil
}

func runRenew(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return renew(ctx, "renew", false, args, stdout, stderr)
}

func runUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return renew(ctx, "update", true, args, stdout, stderr)
}

func renew(ctx context.Context, name string, tentative bool, args []string, stdout, stderr io.Writer) error {
	var revokePrev bool
	c, rest, err := clientCommand(name, stderr, args, func(fs *flag.FlagSet) {
		fs.BoolVar(&revokePrev, "revoke-previous", false, "revoke the current certificate once the new one is issued")
	})
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return &usageError{fmt.Sprintf("usage: mtlsid %s [--server URL] [--ca FILE] [--dir DIR] [--name NAME]", name)}
	}
	if _, err := os.Stat(c.base() + ".cer"); err != nil {
		return fmt.Errorf("no identity %q in %s: enroll first (mtlsid enroll TOKEN), or pick one with --name/--dir", c.name, c.dir)
	}
	roots, err := c.roots()
	if err != nil {
		return err
	}
	// The same engine as `mtlsid agent`: key made here, files written
	// atomically with the old ones kept as .prev.
	eng := &agent.Engine{Server: c.server, Roots: roots, Timeout: c.timeout}
	if c.verbose {
		eng.Trace = stderr
	}
	out, err := eng.Renew(ctx, agent.Identity{Name: c.name, Files: agent.Files{Base: c.base()}, RevokePrevious: revokePrev}, !tentative)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if !out.Renewed {
		fmt.Fprintf(stdout, "not due: %q (serial %s) renews from %s\n", c.name, out.Serial, out.Due.Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(stdout, "renewed %q: serial %s, valid until %s\n", c.name, out.Serial, out.NotAfter.Format(time.RFC3339))
	return nil
}

func runListDevices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	c, _, err := clientCommand("list-devices", stderr, args, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the raw JSON result")
	})
	if err != nil {
		return err
	}
	sc, err := c.client(true, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := sc.Devices(ctx)
	if err != nil {
		return fmt.Errorf("list-devices: %w", err)
	}
	if asJSON {
		return writeJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "%-40s  %-20s  %-8s  %-10s  %s\n", "SERIAL", "NAME", "TYPE", "EXPIRES", "")
	for _, d := range res.Identities {
		mark := ""
		if d.Current {
			mark = "(this device)"
		}
		fmt.Fprintf(stdout, "%-40s  %-20s  %-8s  %-10s  %s\n", d.SerialNumber, d.Name, d.DeviceType, time.UnixMilli(d.NotAfter).Format(time.DateOnly), mark)
	}
	return nil
}

func runRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, rest, err := clientCommand("revoke", stderr, args, nil)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return &usageError{"usage: mtlsid revoke SERIAL [--server URL] [--ca FILE] [--dir DIR] [--name NAME]"}
	}
	sc, err := c.client(true, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := sc.Revoke(ctx, rest[0])
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	fmt.Fprintf(stdout, "revoked %s\n", res.SerialNumber)
	return nil
}

func runGetTrustChain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var out string
	var insecure bool
	c, _, err := clientCommand("get-trust-chain", stderr, args, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "o", "", "write the chain to this file instead of standard output")
		fs.BoolVar(&insecure, "insecure", false, "do not verify the server (first contact); compare the printed fingerprint with the one serve printed")
	})
	if err != nil {
		return err
	}
	sc, err := c.client(false, stderr)
	if err != nil {
		return err
	}
	if insecure {
		sc.HTTP.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	chain, err := sc.TrustChain(ctx)
	if err != nil {
		return fmt.Errorf("get-trust-chain: %w", err)
	}
	certs, err := parsePEMCerts(chain)
	if err != nil || len(certs) == 0 {
		return errors.New("get-trust-chain: the server sent no certificates")
	}
	root := certs[len(certs)-1]
	if out == "" {
		_, err = stdout.Write(chain)
		fmt.Fprintf(stderr, "root %q fingerprint (SHA-256): %s\n", root.Subject.CommonName, mtlsid.Fingerprint(root.Raw))
		return err
	}
	if err := atomicfile.Write(out, chain, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\nroot %q fingerprint (SHA-256): %s\n", out, root.Subject.CommonName, mtlsid.Fingerprint(root.Raw))
	return nil
}

// newKeyAndCSR makes the device's key, which never leaves it, and a CSR.
func newKeyAndCSR(name string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	return key, csr, err
}

// save writes the identity's files atomically, keys and passwords 0600.
func (c *clientFlags) save(key *ecdsa.PrivateKey, res *wire.CertificateResult) error {
	certPEM, err := base64.StdEncoding.DecodeString(res.Certificate)
	if err != nil {
		return fmt.Errorf("server sent an undecodable certificate: %w", err)
	}
	chainPEM, err := base64.StdEncoding.DecodeString(res.Chain)
	if err != nil {
		return fmt.Errorf("server sent an undecodable chain: %w", err)
	}
	certs, err := parsePEMCerts(certPEM)
	if err != nil || len(certs) != 1 {
		return errors.New("server sent no certificate")
	}
	if !publicKeyMatches(certs[0], key) {
		return errors.New("server certified a different key than ours; nothing written")
	}
	return agent.Files{Base: c.base()}.Save(key, certPEM, chainPEM)
}

func publicKeyMatches(cert *x509.Certificate, key *ecdsa.PrivateKey) bool {
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	return ok && pub.Equal(&key.PublicKey)
}

func parsePEMCerts(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return certs, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
}
