package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/ca"
	"github.com/mtlsid/mtlsid/internal/atomicfile"
	"github.com/mtlsid/mtlsid/store/postgres"
	"github.com/mtlsid/mtlsid/store/sqlite"
)

// dataFlags are the flags of every command that works on a data directory.
type dataFlags struct {
	data           string
	database       string
	passphraseFile string
	insecureDev    bool
}

func (d *dataFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.data, "data", "mtlsid-data", "data directory (CA, serving certificate, SQLite database)")
	fs.StringVar(&d.database, "database", "", "database: sqlite:PATH or postgres://... (default sqlite:DATA/mtlsid.db)")
	fs.StringVar(&d.passphraseFile, "ca-passphrase-file", "", "file holding the CA key passphrase (else $MTLSID_CA_PASSPHRASE)")
	fs.BoolVar(&d.insecureDev, "insecure-dev-keys", false, "keep CA keys unencrypted (development only)")
}

func (d *dataFlags) caDir() string { return filepath.Join(d.data, "ca") }

// passphraseFileName is where serve keeps a generated passphrase when the
// operator gave none: the laptop default. Production sets
// MTLSID_CA_PASSPHRASE or --ca-passphrase-file and removes this file.
const passphraseFileName = "passphrase"

// passphrase finds the CA passphrase: nil for dev keys, else the file
// flag, the environment, or the generated file in the data directory. When
// create is true and there is none, it generates one and stores it there.
func (d *dataFlags) passphrase(create bool, log *slog.Logger) ([]byte, error) {
	if d.insecureDev {
		log.Warn("CA keys are UNENCRYPTED (--insecure-dev-keys): use this only for development")
		return nil, nil
	}
	if d.passphraseFile != "" {
		b, err := os.ReadFile(d.passphraseFile)
		if err != nil {
			return nil, fmt.Errorf("read CA passphrase: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return nil, fmt.Errorf("CA passphrase file %s is empty", d.passphraseFile)
		}
		return []byte(p), nil
	}
	if p := os.Getenv("MTLSID_CA_PASSPHRASE"); p != "" {
		return []byte(p), nil
	}
	path := filepath.Join(d.caDir(), passphraseFileName)
	b, err := os.ReadFile(path)
	if err == nil {
		log.Warn("CA passphrase read from a file beside the keys; for production set MTLSID_CA_PASSPHRASE or --ca-passphrase-file and remove it", "file", path)
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read CA passphrase: %w", err)
	}
	if !create {
		return nil, errors.New("the CA key is encrypted: set MTLSID_CA_PASSPHRASE or --ca-passphrase-file (or --insecure-dev-keys for a development CA)")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	p := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(d.caDir(), 0o700); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, []byte(p+"\n"), 0o600); err != nil {
		return nil, err
	}
	log.Warn("no CA passphrase given: generated one and stored it beside the keys; for production set MTLSID_CA_PASSPHRASE or --ca-passphrase-file", "file", path)
	return []byte(p), nil
}

// loadCA loads the CA from the data directory.
func (d *dataFlags) loadCA(log *slog.Logger) (*ca.CA, error) {
	pass, err := d.passphrase(false, log)
	if err != nil {
		return nil, err
	}
	c, err := ca.Load(d.caDir(), pass)
	if err != nil {
		return nil, fmt.Errorf("load CA from %s: %w", d.caDir(), err)
	}
	return c, nil
}

// openStore opens the database named by --database, or the SQLite file in
// the data directory.
func (d *dataFlags) openStore(ctx context.Context) (mtlsid.Store, string, error) {
	url := d.database
	if url == "" {
		url = "sqlite:" + filepath.Join(d.data, "mtlsid.db")
	}
	s, err := openStore(ctx, url)
	return s, redactURL(url), err
}

func openStore(ctx context.Context, url string) (mtlsid.Store, error) {
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "//")
		if path == "" {
			return nil, errors.New("database URL sqlite: needs a path, as in sqlite:mtlsid-data/mtlsid.db")
		}
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("open SQLite database %s: %w", path, err)
		}
		return s, nil
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		s, err := postgres.Open(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL database %s: %w", redactURL(url), err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("database URL %q is not supported: use sqlite:PATH or postgres://USER@HOST:PORT/DB", redactURL(url))
}

// redactURL hides a password in a database URL.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return u
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return u
	}
	return scheme + "://" + user + ":***" + rest[at:]
}

func newLogger(w io.Writer, level slog.Level, json bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
