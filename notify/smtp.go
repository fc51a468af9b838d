package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"
)

// The SMTP transport security modes.
const (
	SMTPStartTLS = "starttls" // plain connection upgraded with STARTTLS (port 587); refused if the server cannot
	SMTPTLS      = "tls"      // TLS from the first byte (port 465)
	SMTPNone     = "none"     // no TLS: only for a relay on loopback or a test server
)

// SMTPConfig says how to send e-mail. An empty Addr disables e-mail.
type SMTPConfig struct {
	// Addr is the server's host:port.
	Addr string
	// From is the sender address, e.g. "mtlsid <mtlsid@example.com>".
	From string
	// User and Password, if User is set, authenticate with PLAIN. net/smtp
	// refuses PLAIN over a connection without TLS unless the server is on
	// loopback.
	User     string
	Password string
	// TLS is SMTPStartTLS, SMTPTLS or SMTPNone. Empty means SMTPStartTLS.
	TLS string
	// TLSConfig verifies the server. Nil means the system roots and the
	// host of Addr as the server name.
	TLSConfig *tls.Config
	// Timeout bounds one message's whole exchange. Zero means 30 seconds.
	Timeout time.Duration
	// HelloName is the name given in EHLO. Empty means "localhost".
	HelloName string
}

func (c *SMTPConfig) check() error {
	if c.Addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("notify: SMTP address %q: %w", c.Addr, err)
	}
	switch c.TLS {
	case "":
		c.TLS = SMTPStartTLS
	case SMTPStartTLS, SMTPTLS, SMTPNone:
	default:
		return fmt.Errorf("notify: SMTP TLS mode %q is not starttls, tls or none", c.TLS)
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("notify: SMTP sender %q: %w", c.From, err)
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.HelloName == "" {
		c.HelloName = "localhost"
	}
	return nil
}

// mailer sends one message per connection.
type mailer struct {
	cfg  SMTPConfig
	from *mail.Address
}

func newMailer(cfg SMTPConfig) *mailer {
	from, _ := mail.ParseAddress(cfg.From) // checked
	return &mailer{cfg: cfg, from: from}
}

// send delivers msg (headers and body, CRLF line ends) to the address to.
func (m *mailer) send(ctx context.Context, to string, msg []byte) error {
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return fmt.Errorf("recipient %q: %w", to, err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	host, _, _ := net.SplitHostPort(m.cfg.Addr)
	tlsCfg := m.cfg.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	if tlsCfg.ServerName == "" {
		tlsCfg = tlsCfg.Clone()
		tlsCfg.ServerName = host
	}

	var conn net.Conn
	d := &net.Dialer{}
	if m.cfg.TLS == SMTPTLS {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tlsCfg}).DialContext(ctx, "tcp", m.cfg.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", m.cfg.Addr)
	}
	if err != nil {
		return fmt.Errorf("connect to %s: %w", m.cfg.Addr, err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(m.cfg.HelloName); err != nil {
		return fmt.Errorf("smtp hello: %w", err)
	}
	if m.cfg.TLS == SMTPStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("smtp server does not offer STARTTLS (use --smtp-tls tls or none)")
		}
		if err := c.StartTLS(tlsCfg); err != nil {
			return fmt.Errorf("smtp starttls: %w", err)
		}
	}
	if m.cfg.User != "" {
		if err := c.Auth(smtp.PlainAuth("", m.cfg.User, m.cfg.Password, host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.Mail(m.from.Address); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	if err := c.Rcpt(rcpt.Address); err != nil {
		return fmt.Errorf("smtp RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	return c.Quit()
}

// header builds the message headers. Values are single-line: the caller
// has checked the addresses, and the subject is encoded.
func header(from, to, subject string, date time.Time, id string) string {
	var b strings.Builder
	for _, kv := range [][2]string{
		{"From", from}, {"To", to}, {"Subject", subject}, {"Date", date.Format(time.RFC1123Z)},
		{"Message-ID", "<" + id + ">"}, {"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"}, {"Content-Transfer-Encoding", "quoted-printable"},
		{"Auto-Submitted", "auto-generated"},
	} {
		b.WriteString(kv[0] + ": " + kv[1] + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}
