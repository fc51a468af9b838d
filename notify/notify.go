package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsid/mtlsid"
)

// LeaseName is the database lease the notifiers of all nodes share.
const LeaseName = "notify"

// DefaultLeaseTTL is the lease's lifetime when Config.LeaseTTL is zero:
// as the fleet's other jobs (server.DefaultLeaseTTL), a little longer, as
// a scan may wait on SMTP servers and webhooks.
const DefaultLeaseTTL = 15 * time.Second

// Channels, as the delivery log names them.
const (
	ChannelEmail    = "email"
	ChannelWebhook  = "webhook"
	ChannelOrgEmail = "org-email"
)

// Delivery statuses.
const (
	StatusSent   = "sent"
	StatusFailed = "failed"
)

// Config configures a Notifier. Store is required; every other field has
// a documented default.
type Config struct {
	Store mtlsid.NoticeStore
	// SMTP sends e-mail; an empty SMTP.Addr disables e-mail (webhooks
	// still go out).
	SMTP SMTPConfig
	// PublicURL is the authority's base URL as its users reach it
	// (https://host:port), named in notices. Empty leaves it out.
	PublicURL string
	// Thresholds are when notices go out. Nil means
	// mtlsid.DefaultThresholds.
	Thresholds []mtlsid.Threshold
	// Interval is the time between scans. Zero means one minute.
	Interval time.Duration
	// LeaseTTL is how long the lease lasts unless renewed. Run renews it
	// every third of that while this node holds it, between scans and
	// during them, so a node that dies passes the notices on within about
	// this long; Scan alone renews it before every batch. Zero means
	// DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Holder names this node in the lease. Empty means the host name and
	// a random suffix.
	Holder string
	// BatchSize is how many notices a scan reads at once. Zero means 100.
	BatchSize int
	// WebhookAttempts is how many times a webhook is tried in one scan.
	// Zero means 3.
	WebhookAttempts int
	// WebhookBackoff is the wait after the first failed attempt, doubled
	// after each later one. Zero means one second.
	WebhookBackoff time.Duration
	// WebhookTimeout bounds one attempt. Zero means 10 seconds.
	WebhookTimeout time.Duration
	// HTTPClient posts webhooks. Nil means a client that follows no
	// redirects.
	HTTPClient *http.Client
	// Logger receives logs. Nil discards them.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Notifier sends expiry notices. It is safe for concurrent use, though
// one Run per process is what is meant.
type Notifier struct {
	cfg    Config
	mail   *mailer // nil: e-mail disabled
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	// scanning is held by the scan in progress: the lease is per holder,
	// so it does not keep two scans of this node apart.
	scanning sync.Mutex
	// holding: the last scan took the lease and no renewal has failed
	// since; Run's heartbeat renews it while true.
	holding atomic.Bool
}

// New checks cfg and returns a Notifier.
func New(cfg Config) (*Notifier, error) {
	if cfg.Store == nil {
		return nil, errors.New("notify: no store")
	}
	if err := cfg.SMTP.check(); err != nil {
		return nil, err
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.Thresholds == nil {
		cfg.Thresholds = mtlsid.DefaultThresholds()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		b := make([]byte, 6)
		rand.Read(b)
		cfg.Holder = host + "-" + hex.EncodeToString(b)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.WebhookAttempts <= 0 {
		cfg.WebhookAttempts = 3
	}
	if cfg.WebhookBackoff <= 0 {
		cfg.WebhookBackoff = time.Second
	}
	if cfg.WebhookTimeout <= 0 {
		cfg.WebhookTimeout = 10 * time.Second
	}
	n := &Notifier{cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger, now: cfg.Now}
	if cfg.SMTP.Addr != "" {
		n.mail = newMailer(cfg.SMTP)
	}
	if n.client == nil {
		n.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.now == nil {
		n.now = time.Now
	}
	return n, nil
}

// Run scans at once and then every interval until ctx ends, and gives up
// the lease on the way out. Failures are logged and retried at the next
// scan.
func (n *Notifier) Run(ctx context.Context) {
	t := time.NewTicker(n.cfg.Interval)
	defer t.Stop()
	var heartbeat sync.WaitGroup
	hctx, stop := context.WithCancel(ctx)
	heartbeat.Go(func() { n.heartbeat(hctx) })
	defer heartbeat.Wait()
	defer stop()
	for {
		if _, err := n.Scan(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("expiry notice scan failed", "err", err)
		}
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := n.cfg.Store.ReleaseLease(rctx, LeaseName, n.cfg.Holder); err != nil {
				n.log.Warn("release of the notice lease failed", "err", err)
			}
			return
		case <-t.C:
		}
	}
}

// heartbeat renews the lease every third of its TTL while this node holds
// it, so that it does not lapse between scans (another node would take it
// for no reason) nor during a long one (two nodes would send), and lapses
// soon after this node dies.
func (n *Notifier) heartbeat(ctx context.Context) {
	t := time.NewTicker(n.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.holding.Load() {
			continue
		}
		ok, err := n.cfg.Store.RenewLease(ctx, LeaseName, n.cfg.Holder, n.cfg.LeaseTTL, n.now())
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("notice lease not renewed", "err", err)
			}
			continue
		}
		if !ok {
			n.holding.Store(false)
			n.log.Warn("notice lease lost; another node sends the notices")
		}
	}
}

// Stats counts what one scan did.
type Stats struct {
	Leader bool // this node held the lease
	Due    int  // notices found due
	Sent   int  // notices recorded as sent
}

// Scan does one round: it takes (or extends) the lease, and if this node
// holds it, sends every notice due now, in batches. A notice is recorded
// as sent once one of its channels delivered it; one whose channels all
// failed stays due and is tried again at the next scan. If the lease is
// lost in between batches, the scan stops. A Scan called while another of
// this Notifier runs returns at once, doing nothing.
func (n *Notifier) Scan(ctx context.Context) (Stats, error) {
	var st Stats
	if !n.scanning.TryLock() {
		return st, nil
	}
	defer n.scanning.Unlock()
	ok, err := n.cfg.Store.AcquireLease(ctx, LeaseName, n.cfg.Holder, n.cfg.LeaseTTL, n.now())
	n.holding.Store(ok && err == nil)
	if err != nil || !ok {
		return st, err
	}
	st.Leader = true
	q := mtlsid.NoticeQuery{Thresholds: n.cfg.Thresholds, Limit: n.cfg.BatchSize}
	for first := true; ; first = false {
		now := n.now()
		if !first {
			if ok, err := n.cfg.Store.RenewLease(ctx, LeaseName, n.cfg.Holder, n.cfg.LeaseTTL, now); err != nil || !ok {
				if err == nil {
					n.log.Warn("notice lease lost during a scan; another node goes on")
				}
				return st, err
			}
		}
		q.Now = now
		due, err := n.cfg.Store.NoticesDue(ctx, q)
		if err != nil {
			return st, err
		}
		st.Due += len(due)
		sent, err := n.sendBatch(ctx, due, now)
		st.Sent += sent
		if err != nil {
			return st, err
		}
		if len(due) < q.Limit {
			return st, nil
		}
		last := due[len(due)-1].Certificate
		q.AfterNotAfter, q.AfterSerial = last.NotAfter, last.Serial
	}
}

// sendBatch sends a batch's notices and records those delivered.
func (n *Notifier) sendBatch(ctx context.Context, due []mtlsid.DueNotice, now time.Time) (int, error) {
	delivered := make([]bool, len(due))
	orgs := map[string][]int{} // org ID: indexes of its notices
	var orgOrder []string
	for i := range due {
		d := &due[i]
		if d.Contact.Email != "" && n.mail != nil {
			subject, body := n.noticeText(d, now)
			id := fmt.Sprintf("%s.%s.%d@mtlsid", d.Certificate.Serial, d.Threshold, now.Unix())
			err := n.mail.send(ctx, d.Contact.Email, n.message(d.Contact.Email, subject, body, now, id))
			delivered[i] = n.logAttempt(ctx, d, ChannelEmail, d.Contact.Email, err) || delivered[i]
		}
		if d.Contact.WebhookURL != "" {
			delivered[i] = n.sendWebhook(ctx, d, now) || delivered[i]
		}
		if d.OrgEmail != "" && n.mail != nil {
			if _, seen := orgs[d.OrgID]; !seen {
				orgOrder = append(orgOrder, d.OrgID)
			}
			orgs[d.OrgID] = append(orgs[d.OrgID], i)
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	for _, org := range orgOrder {
		idx := orgs[org]
		list := make([]*mtlsid.DueNotice, len(idx))
		for j, i := range idx {
			list[j] = &due[i]
		}
		to := list[0].OrgEmail
		subject, body := n.orgText(org, list, now)
		err := n.mail.send(ctx, to, n.message(to, subject, body, now, fmt.Sprintf("org.%s.%d@mtlsid", org, now.UnixNano())))
		for j, d := range list {
			if n.logAttempt(ctx, d, ChannelOrgEmail, to, err) {
				delivered[idx[j]] = true
			}
		}
	}
	sent := 0
	for i, ok := range delivered {
		if !ok {
			continue
		}
		d := &due[i]
		err := n.cfg.Store.RecordNotice(ctx, mtlsid.SentNotice{Serial: d.Certificate.Serial, Threshold: d.Threshold, SentAt: now})
		switch {
		case errors.Is(err, mtlsid.ErrConflict):
			// Recorded by another node that held the lease before: the
			// lease TTL is shorter than a batch takes.
			n.log.Warn("expiry notice was already recorded: raise the lease TTL", "serial", d.Certificate.Serial, "threshold", d.Threshold)
		case err != nil:
			return sent, fmt.Errorf("record notice %s of %s: %w", d.Threshold, d.Certificate.Serial, err)
		default:
			sent++
			n.log.Info("expiry notice sent", "serial", d.Certificate.Serial, "threshold", d.Threshold, "identity", d.Certificate.IdentityID)
		}
	}
	return sent, nil
}

// sendWebhook posts the notice, retrying with backoff; every attempt goes
// into the delivery log. It reports whether one succeeded.
func (n *Notifier) sendWebhook(ctx context.Context, d *mtlsid.DueNotice, now time.Time) bool {
	body, err := json.Marshal(n.payload(d, now))
	if err != nil {
		n.log.Error("webhook body", "err", err)
		return false
	}
	wait := n.cfg.WebhookBackoff
	for attempt := 1; ; attempt++ {
		err := n.post(ctx, d.Contact.WebhookURL, d.Contact.WebhookSecret, body)
		if n.logAttempt(ctx, d, ChannelWebhook, d.Contact.WebhookURL, err) {
			return true
		}
		if attempt >= n.cfg.WebhookAttempts || sleep(ctx, wait) != nil {
			return false
		}
		wait *= 2
	}
}

// logAttempt writes an attempt to the delivery log and reports whether it
// succeeded. A delivery log that cannot be written is logged, not fatal:
// the notice itself went out or not regardless.
func (n *Notifier) logAttempt(ctx context.Context, d *mtlsid.DueNotice, channel, target string, sendErr error) bool {
	rec := mtlsid.Delivery{Serial: d.Certificate.Serial, IdentityID: d.Certificate.IdentityID, Threshold: d.Threshold,
		Channel: channel, Target: target, Status: StatusSent, At: n.now()}
	if sendErr != nil {
		rec.Status, rec.Error = StatusFailed, sendErr.Error()
		n.log.Warn("expiry notice delivery failed", "serial", d.Certificate.Serial, "channel", channel, "target", target, "err", sendErr)
	}
	if err := n.cfg.Store.LogDelivery(context.WithoutCancel(ctx), rec); err != nil {
		n.log.Error("delivery log write failed", "serial", d.Certificate.Serial, "err", err)
	}
	return sendErr == nil
}
