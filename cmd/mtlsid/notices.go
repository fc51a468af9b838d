package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/notify"
)

// noticeFlags configure the expiry notices that `serve` sends.
type noticeFlags struct {
	smtpAddr         string
	smtpFrom         string
	smtpUser         string
	smtpPasswordFile string
	smtpTLS          string
	interval         time.Duration
}

func (f *noticeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.smtpAddr, "smtp-addr", "", "SMTP server (host:port) for expiry notices by e-mail (default: no e-mail; webhooks still go out)")
	fs.StringVar(&f.smtpFrom, "smtp-from", "", "sender address of notice e-mails, e.g. 'mtlsid <mtlsid@example.com>'")
	fs.StringVar(&f.smtpUser, "smtp-user", "", "SMTP user name for PLAIN authentication (default: none)")
	fs.StringVar(&f.smtpPasswordFile, "smtp-password-file", "", "file holding the SMTP password")
	fs.StringVar(&f.smtpTLS, "smtp-tls", notify.SMTPStartTLS, "SMTP transport security: starttls, tls (implicit, port 465) or none")
	fs.DurationVar(&f.interval, "notice-interval", time.Minute, "how often to scan for certificates due an expiry notice (0 turns notices off)")
}

// notifier builds the expiry notifier, or returns nil if notices are off.
func (f *noticeFlags) notifier(store mtlsid.Store, publicURL, nodeName string, log *slog.Logger) (*notify.Notifier, error) {
	if f.interval == 0 {
		return nil, nil
	}
	if f.interval < time.Second {
		return nil, &usageError{"--notice-interval: at least 1s, or 0 to turn notices off"}
	}
	smtp := notify.SMTPConfig{Addr: f.smtpAddr, From: f.smtpFrom, User: f.smtpUser, TLS: f.smtpTLS}
	if f.smtpAddr != "" && f.smtpFrom == "" {
		return nil, &usageError{"--smtp-addr needs --smtp-from"}
	}
	if f.smtpPasswordFile != "" {
		b, err := os.ReadFile(f.smtpPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--smtp-password-file: %w", err)
		}
		smtp.Password = strings.TrimRight(string(b), "\r\n")
	}
	n, err := notify.New(notify.Config{Store: store, SMTP: smtp, PublicURL: publicURL, Interval: f.interval, Holder: nodeName, Logger: log})
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	return n, nil
}
