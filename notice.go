package mtlsid

import (
	"context"
	"log/slog"
	"time"
)

// AuditContactSet is the audit event of a change to an identity's contact
// details.
const AuditContactSet = "contact.set"

// Contact is where an identity's expiry notices go. Empty fields are
// channels not used; an identity whose Contact has neither an e-mail
// address nor a webhook URL gets no notices of its own.
//
// WebhookSecret is stored as given, not hashed: the notifier needs it to
// sign each webhook body (HMAC-SHA256), so anyone who can read the
// database can forge this identity's webhooks. It is never logged and
// never shown back in full.
type Contact struct {
	IdentityID    string
	Email         string
	WebhookURL    string
	WebhookSecret string
	UpdatedAt     time.Time
}

// LogValue keeps the webhook secret out of logs.
func (c Contact) LogValue() slog.Value {
	return slog.GroupValue(slog.String("identity", c.IdentityID), slog.String("email", c.Email),
		slog.String("webhook", c.WebhookURL), slog.Bool("webhook_secret_set", c.WebhookSecret != ""))
}

// Threshold is a moment in a certificate's life at which its owner is sent
// a notice: the renewal point (two thirds of its life) when Renewal is
// set, otherwise Before its NotAfter (zero: at expiry). Name is the stable
// key under which a sent notice is recorded.
type Threshold struct {
	Name    string
	Before  time.Duration
	Renewal bool
}

// Crossing returns when c crosses th.
func (th Threshold) Crossing(c *Certificate) time.Time {
	if th.Renewal {
		return RenewalPoint(c.NotBefore, c.NotAfter)
	}
	return c.NotAfter.Add(-th.Before)
}

// The names of the default thresholds.
const (
	ThresholdRenewal = "renewal" // two thirds of the life: renewing now is recommended
	Threshold30Days  = "30d"
	Threshold7Days   = "7d"
	Threshold1Day    = "1d"
	ThresholdExpired = "expired" // at expiry
)

// DefaultThresholds returns the thresholds of the best-practices document:
// two thirds of the life, 30, 7 and 1 days before expiry, and at expiry.
func DefaultThresholds() []Threshold {
	const day = 24 * time.Hour
	return []Threshold{
		{Name: ThresholdRenewal, Renewal: true},
		{Name: Threshold30Days, Before: 30 * day},
		{Name: Threshold7Days, Before: 7 * day},
		{Name: Threshold1Day, Before: day},
		{Name: ThresholdExpired},
	}
}

// NoticeGrace is how long after its expiry a certificate can still be
// due a notice (the at-expiry one, if it was missed, say because the
// notifier was down). Certificates that expired earlier are never
// noticed, so turning notices on for an old database does not mail about
// certificates long gone.
const NoticeGrace = 7 * 24 * time.Hour

// NoticeQuery asks for the notices due at Now.
type NoticeQuery struct {
	Now        time.Time
	Thresholds []Threshold
	// Limit is the most notices returned; zero or less means 1000.
	Limit int
	// After pages: only certificates after this (NotAfter, Serial), in
	// that order, are considered. Zero values start at the beginning.
	AfterNotAfter time.Time
	AfterSerial   string
}

// DueNotice is a notice to send: a certificate, the threshold it crossed
// most recently, and where the notice goes.
type DueNotice struct {
	// Certificate is without its DER.
	Certificate Certificate
	Threshold   string
	// Contact is the owner's; zero (IdentityID "") if it has none.
	Contact Contact
	// ServiceID, OrgID and OrgEmail are set when the owner is a service's
	// agent identity (an API certificate).
	ServiceID string
	OrgID     string
	OrgEmail  string
}

// SentNotice records that a notice went out.
type SentNotice struct {
	Serial    string
	Threshold string
	SentAt    time.Time
}

// Delivery is one attempt to deliver a notice on one channel.
type Delivery struct {
	ID         int64 // set by the store
	Serial     string
	IdentityID string
	Threshold  string
	Channel    string // "email", "webhook" or "org-email"
	Target     string // the address or URL
	Status     string // "sent" or "failed"
	Error      string
	At         time.Time
}

// NoticeStore keeps contact details, the notices sent, the delivery log
// and the leases that let one node of many do a job.
type NoticeStore interface {
	// SetContact stores an identity's contact details, replacing earlier
	// ones, with audit: ErrNotFound if the identity is unknown. A Contact
	// with every channel empty removes them.
	SetContact(ctx context.Context, c Contact, audit AuditEvent) error
	// Contact returns an identity's contact details: ErrNotFound if it has
	// none.
	Contact(ctx context.Context, identityID string) (*Contact, error)

	// NoticesDue returns, ordered by (NotAfter, Serial), up to q.Limit
	// notices due at q.Now: for each certificate that is not revoked, not
	// renewed (no unrevoked certificate has RenewedFrom pointing at it),
	// not expired for more than NoticeGrace, whose owner has a contact
	// with an e-mail address or webhook URL, or is a service whose
	// organization has an e-mail address, the threshold of q.Thresholds
	// crossed most recently at q.Now, unless a notice for that
	// (serial, threshold) is recorded. Thresholds crossed earlier and
	// never sent are skipped: only the most urgent notice goes out. It
	// reads an index on expiry, not every certificate.
	NoticesDue(ctx context.Context, q NoticeQuery) ([]DueNotice, error)
	// RecordNotice records that the notice for (serial, threshold) was
	// sent: ErrConflict if it already was (each notice is sent once),
	// ErrNotFound if the certificate is unknown.
	RecordNotice(ctx context.Context, n SentNotice) error
	// SentNotices lists the notices recorded for a certificate, oldest
	// first.
	SentNotices(ctx context.Context, serial string) ([]SentNotice, error)

	// LogDelivery appends an attempt to the delivery log.
	LogDelivery(ctx context.Context, d Delivery) error
	// Deliveries returns an identity's newest deliveries, newest first,
	// up to limit ("" lists every identity's).
	Deliveries(ctx context.Context, identityID string, limit int) ([]Delivery, error)

	// AcquireLease takes the lease name for holder until now+ttl, if it
	// is free, expired at now, or already holder's (then it is
	// extended). It reports whether holder holds it. Nodes compare their
	// own clocks with the stored expiry: keep ttl well above their skew.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error)
	// RenewLease extends holder's lease to now+ttl; it reports false,
	// changing nothing, if holder does not hold it or it expired.
	RenewLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error)
	// ReleaseLease gives the lease up if holder holds it; otherwise it
	// does nothing.
	ReleaseLease(ctx context.Context, name, holder string) error
}
