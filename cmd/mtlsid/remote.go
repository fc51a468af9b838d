package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mtlsid/mtlsid/internal/atomicfile"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// remoteCmd is a client command that calls the self-authority API with the
// identity in DIR (a person's device or a service's API certificate).
type remoteCmd struct {
	name  string // "org create": for flag errors and messages
	usage string // the whole usage line, shown on a mistake
	nargs int    // positional arguments, exactly
	flags func(fs *flag.FlagSet)
	// check, if set, validates the parsed command line before anything is
	// read or sent, so that a mistake is a usage error (exit 2) whatever
	// the state of DIR.
	check func(args []string) error
	run   func(ctx context.Context, r *remoteRun) error
}

// remoteRun is one parsed invocation of a remoteCmd.
type remoteRun struct {
	*clientFlags
	sc     *sdk.SelfClient
	args   []string
	json   bool // --json: print the raw result
	stdout io.Writer
}

// exec parses args, checks the positional count and runs the command
// with a context bounded by --timeout. API errors come back prefixed with
// the command's name; they exit 1.
func (rc remoteCmd) exec(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	c, rest, err := clientCommand(rc.name, stderr, args, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the raw JSON result")
		if rc.flags != nil {
			rc.flags(fs)
		}
	})
	if err != nil {
		return err
	}
	if len(rest) != rc.nargs {
		return &usageError{"usage: " + rc.usage}
	}
	if rc.check != nil {
		if err := rc.check(rest); err != nil {
			return err
		}
	}
	sc, err := c.client(true, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := rc.run(ctx, &remoteRun{clientFlags: c, sc: sc, args: rest, json: asJSON, stdout: stdout}); err != nil {
		return fmt.Errorf("%s: %w", rc.name, err)
	}
	return nil
}

// print writes the raw result with --json, else calls human.
func (r *remoteRun) print(res any, human func(w io.Writer)) error {
	if r.json {
		return writeJSON(r.stdout, res)
	}
	human(r.stdout)
	return nil
}

// dispatch runs the subcommand args[0] of a command group such as `org`.
func dispatch(ctx context.Context, group string, subs []remoteCmd, args []string, stdout, stderr io.Writer) error {
	var lines []string
	for _, s := range subs {
		lines = append(lines, "  "+s.usage)
		if len(args) > 0 && "mtlsid "+group+" "+args[0] == "mtlsid "+s.name {
			return s.exec(ctx, args[1:], stdout, stderr)
		}
	}
	msg := "usage:\n" + strings.Join(lines, "\n") + "\ncommon flags: --server URL --ca FILE --dir DIR --name NAME --json -v"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stdout, msg)
		return nil
	}
	return &usageError{msg}
}

// checkService checks a service given as a full ID ("<name>.<org>"), or
// as a name with --org; the server checks that the two agree.
func checkService(service, org string) error {
	if service == "" {
		return &usageError{"--service is required"}
	}
	if !strings.Contains(service, ".") && org == "" {
		return &usageError{fmt.Sprintf("service %q needs --org ORG (or give it as NAME.ORG)", service)}
	}
	return nil
}

// needFlag is a usage error unless the flag was given a value.
func needFlag(name, value string) error {
	if value == "" {
		return &usageError{"--" + name + " is required"}
	}
	return nil
}

// file is one file of an issued certificate, written 0600.
type file struct {
	ext  string
	data []byte
}

// writeFiles writes base+ext for each file atomically, 0600, creating the
// directory 0700.
func writeFiles(base string, files []file) error {
	if err := os.MkdirAll(filepath.Dir(base), 0o700); err != nil {
		return err
	}
	for _, f := range files {
		if err := atomicfile.Write(base+f.ext, f.data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// decodeCert decodes the certificate and chain of a result and checks
// that the certificate is one.
func decodeCert(res *wire.CertificateResult) (certPEM, chainPEM []byte, err error) {
	if certPEM, err = base64.StdEncoding.DecodeString(res.Certificate); err != nil {
		return nil, nil, fmt.Errorf("server sent an undecodable certificate: %w", err)
	}
	if chainPEM, err = base64.StdEncoding.DecodeString(res.Chain); err != nil {
		return nil, nil, fmt.Errorf("server sent an undecodable chain: %w", err)
	}
	if certs, err := parsePEMCerts(certPEM); err != nil || len(certs) != 1 {
		return nil, nil, errors.New("server sent no certificate")
	}
	return certPEM, chainPEM, nil
}

// ownKeyFiles are the files of a certificate for a key made here: the key,
// the certificate and the chain. It refuses a certificate for another key.
func ownKeyFiles(key *ecdsa.PrivateKey, res *wire.CertificateResult) ([]file, error) {
	certPEM, chainPEM, err := decodeCert(res)
	if err != nil {
		return nil, err
	}
	certs, _ := parsePEMCerts(certPEM)
	if !publicKeyMatches(certs[0], key) {
		return nil, errors.New("server certified a different key than ours; nothing written")
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return nil, err
	}
	return []file{{".key", keyPEM}, {".cer", certPEM}, {".chain.pem", chainPEM}}, nil
}

// serverKeyFiles are the files of a certificate whose key the server made:
// key, certificate, chain, PKCS#12 and its password.
func serverKeyFiles(res *wire.CertificateResult) ([]file, error) {
	certPEM, chainPEM, err := decodeCert(res)
	if err != nil {
		return nil, err
	}
	keyPEM, err := base64.StdEncoding.DecodeString(res.PrivateKey)
	if err != nil || len(keyPEM) == 0 {
		return nil, errors.New("server sent no private key")
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("server sent a key that does not match the certificate: %w", err)
	}
	p12, err := base64.StdEncoding.DecodeString(res.P12)
	if err != nil || len(p12) == 0 || res.Password == "" {
		return nil, errors.New("server sent no PKCS#12")
	}
	return []file{{".key", keyPEM}, {".cer", certPEM}, {".chain.pem", chainPEM}, {".p12", p12}, {".password", []byte(res.Password + "\n")}}, nil
}

// marshalKey encodes a key made here as PKCS#8 PEM.
func marshalKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// safeName makes a name usable as a file name.
func safeName(name string) string { return unsafeFileChars.ReplaceAllString(name, "_") }
