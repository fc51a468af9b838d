package ca

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The files of a CA directory.
const (
	RootCertFile   = "root.crt"
	RootKeyFile    = "root.key"
	IssuerCertFile = "issuer.crt"
	IssuerKeyFile  = "issuer.key"
)

func caFiles() []string {
	return []string{RootCertFile, RootKeyFile, IssuerCertFile, IssuerKeyFile}
}

// Exists reports whether dir holds any CA file, complete or not. A caller
// that finds one should Load (which reports a missing file) rather than
// Init (which refuses).
func Exists(dir string) bool {
	for _, name := range caFiles() {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

type caFile struct {
	name string
	data []byte
	perm fs.FileMode
}

// writeCA puts files into dir so that a crash leaves either all of them or
// none. They are written and synced in a fresh directory beside dir, which
// is then renamed to dir: a rename is atomic, so dir never holds half a CA.
// If dir exists and is empty it is replaced. If it holds other files, the
// CA files are renamed in one by one, keys first, so that the certificate
// Load looks for last appears last; a crash in that short window leaves a
// CA that Load reports as incomplete and Init refuses to touch.
func writeCA(dir string, files []caFile) (err error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".init-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(stage)
		}
	}()
	if err := os.Chmod(stage, 0o700); err != nil {
		return err
	}
	for _, f := range files {
		if err := writeSynced(filepath.Join(stage, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	if err := syncDir(stage); err != nil {
		return err
	}

	empty, err := emptyOrMissing(dir)
	if err != nil {
		return err
	}
	if empty {
		// os.Rename refuses to replace a directory, even an empty one.
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Rename(stage, dir); err != nil {
			return err
		}
		return syncDir(parent)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	// Link, unlike rename, never replaces a file that appeared meanwhile.
	for _, f := range files {
		if err := os.Link(filepath.Join(stage, f.name), filepath.Join(dir, f.name)); err != nil {
			return fmt.Errorf("%w (a partial CA may remain in %s)", err, dir)
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return os.RemoveAll(stage)
}

// writeSynced writes a new file and syncs it, so that the rename that
// publishes it never exposes an empty or short file after a crash.
func writeSynced(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func emptyOrMissing(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return len(entries) == 0, nil
}
