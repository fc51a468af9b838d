// Package notify sends certificate expiry notices: e-mail over SMTP and
// signed webhooks to each certificate owner's contact, and a summary
// e-mail to the organization of each service whose API certificates near
// expiry. A Notifier's Run is the scheduler job: every interval it takes
// a database lease, so that of any number of `mtlsid serve` nodes only
// one sends, scans the due notices in batches, sends them, and records
// each as sent once a channel has delivered it.
//
// It imports only the root package and the standard library; server
// assembles it and cmd/mtlsid configures it.
package notify
