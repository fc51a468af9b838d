package gateway

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certFiles is a server certificate read from PEM files and read again
// when they change (checked at most once a second, at a handshake), so
// that renewed files take effect without a restart and without dropping
// connections. A new pair that does not load is logged and the old one
// kept. It is safe for concurrent use.
type certFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cur     *tls.Certificate
	stamp   string // modification times and sizes of the loaded files
	checked time.Time
}

func newCertFiles(certFile, keyFile string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := c.fileStamp()
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	c.cur, c.stamp, c.checked = &cert, stamp, time.Now()
	return c, nil
}

func (c *certFiles) fileStamp() (string, error) {
	var s string
	for _, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		s += fmt.Sprint(fi.ModTime().UnixNano(), "/", fi.Size(), ";")
	}
	return s, nil
}

// get is a tls.Config.GetCertificate.
func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) < time.Second {
		return c.cur, nil
	}
	c.checked = time.Now()
	stamp, err := c.fileStamp()
	if err != nil || stamp == c.stamp {
		return c.cur, nil // a file being replaced: keep serving the old pair
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		// Written one file at a time: the pair may match at the next look.
		c.log.Warn("new TLS certificate files do not load; keeping the old certificate", "cert", c.certFile, "err", err)
		return c.cur, nil
	}
	c.cur, c.stamp = &cert, stamp
	c.log.Info("TLS certificate reloaded", "cert", c.certFile, "serial", "0x"+cert.Leaf.SerialNumber.Text(16))
	return c.cur, nil
}
