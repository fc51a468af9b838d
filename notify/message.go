package notify

import (
	"bytes"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
)

// RenewCommand returns the command that renews the certificate on the
// machine that holds it. server, if set, is the authority's public URL.
func RenewCommand(c *mtlsid.Certificate, server string) string {
	cmd := "mtlsid renew --name " + shellQuote(c.Name)
	if server != "" {
		cmd += " --server " + shellQuote(server)
	}
	return cmd
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// plain characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// headline says what the threshold means, e.g. "expires in 7 days".
func headline(n *mtlsid.DueNotice, now time.Time) string {
	left := n.Certificate.NotAfter.Sub(now)
	switch {
	case left <= 0:
		return "has expired"
	case n.Threshold == mtlsid.ThresholdRenewal:
		return "should be renewed now (" + within(left) + " left)"
	}
	return "expires in " + within(left)
}

// within prints a duration in days, or hours under two days.
func within(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	if d >= 2*time.Hour {
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d minutes", max(1, int(d.Minutes())))
}

func kind(c *mtlsid.Certificate, serviceID string) string {
	switch {
	case serviceID != "":
		return "API certificate of service " + serviceID
	case c.Profile == mtlsid.ProfileServer:
		return "server certificate"
	case c.Profile == mtlsid.ProfileAgent:
		return "agent certificate"
	}
	return "device certificate"
}

// noticeText returns the subject and plain-text body of a notice to the
// certificate's owner.
func (n *Notifier) noticeText(d *mtlsid.DueNotice, now time.Time) (subject, body string) {
	c := &d.Certificate
	subject = fmt.Sprintf("Certificate %q %s", c.Name, headline(d, now))
	var b strings.Builder
	fmt.Fprintf(&b, "Your certificate %q %s.\n\n", c.Name, headline(d, now))
	fmt.Fprintf(&b, "  Certificate: %s (%s)\n", c.Name, kind(c, d.ServiceID))
	fmt.Fprintf(&b, "  Serial:      %s (%s)\n", c.Serial, mtlsid.HexSerial(c.Serial))
	if d.ServiceID != "" {
		fmt.Fprintf(&b, "  Service:     %s\n", d.ServiceID)
	}
	fmt.Fprintf(&b, "  Identity:    %s\n", c.IdentityID)
	fmt.Fprintf(&b, "  Expires:     %s\n\n", c.NotAfter.UTC().Format("2006-01-02 15:04 MST"))
	b.WriteString(n.renewText(c))
	return subject, b.String()
}

func (n *Notifier) renewText(c *mtlsid.Certificate) string {
	var b strings.Builder
	b.WriteString("Renewing is free and possible at any time. On the machine that holds it, run:\n\n")
	fmt.Fprintf(&b, "    %s\n\n", RenewCommand(c, n.cfg.PublicURL))
	if n.cfg.PublicURL != "" {
		fmt.Fprintf(&b, "or renew it on the page %s/my\n", n.cfg.PublicURL)
	}
	return b.String()
}

// orgText returns the subject and body of an organization's summary of
// its services' certificates.
func (n *Notifier) orgText(orgID string, due []*mtlsid.DueNotice, now time.Time) (subject, body string) {
	subject = fmt.Sprintf("%d certificate(s) of organization %s need renewal", len(due), orgID)
	var b strings.Builder
	fmt.Fprintf(&b, "These API certificates of the services of %s near or passed their expiry:\n\n", orgID)
	for _, d := range due {
		c := &d.Certificate
		fmt.Fprintf(&b, "- %s: %q (serial %s) %s, on %s\n    renew: %s\n",
			d.ServiceID, c.Name, c.Serial, headline(d, now), c.NotAfter.UTC().Format("2006-01-02 15:04 MST"),
			RenewCommand(c, n.cfg.PublicURL))
	}
	if n.cfg.PublicURL != "" {
		fmt.Fprintf(&b, "\nOr renew them on the page %s/my\n", n.cfg.PublicURL)
	}
	return subject, b.String()
}

// message assembles an e-mail: headers, then the body quoted-printable.
func (n *Notifier) message(to, subject, body string, now time.Time, id string) []byte {
	var buf bytes.Buffer
	buf.WriteString(header(n.cfg.SMTP.From, to, mime.QEncoding.Encode("utf-8", "[mtlsid] "+subject), now, id))
	qp := quotedprintable.NewWriter(&buf)
	qp.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
	qp.Close()
	return buf.Bytes()
}

// Payload is the JSON body of a webhook notice.
type Payload struct {
	Type        string       `json:"type"` // "certificate.expiry_notice"
	Threshold   string       `json:"threshold"`
	Summary     string       `json:"summary"`
	Certificate PayloadCert  `json:"certificate"`
	Renew       PayloadRenew `json:"renew"`
	SentAt      time.Time    `json:"sent_at"`
}

// PayloadCert describes the certificate in a webhook notice.
type PayloadCert struct {
	Serial    string    `json:"serial"`
	Name      string    `json:"name"`
	Profile   string    `json:"profile"`
	Identity  string    `json:"identity"`
	Service   string    `json:"service,omitempty"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// PayloadRenew says how to renew.
type PayloadRenew struct {
	Command string `json:"command"`
	Page    string `json:"page,omitempty"`
}

func (n *Notifier) payload(d *mtlsid.DueNotice, now time.Time) Payload {
	c := &d.Certificate
	p := Payload{
		Type: "certificate.expiry_notice", Threshold: d.Threshold, SentAt: now.UTC(),
		Summary: fmt.Sprintf("Certificate %q %s", c.Name, headline(d, now)),
		Certificate: PayloadCert{Serial: c.Serial, Name: c.Name, Profile: string(c.Profile), Identity: c.IdentityID,
			Service: d.ServiceID, NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()},
		Renew: PayloadRenew{Command: RenewCommand(c, n.cfg.PublicURL)},
	}
	if n.cfg.PublicURL != "" {
		p.Renew.Page = n.cfg.PublicURL + "/my"
	}
	return p
}
