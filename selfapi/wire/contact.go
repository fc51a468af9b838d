package wire

// ContactResult answers set_contact and get_contact: where the caller's
// identity gets its expiry notices. Empty fields are channels not used.
type ContactResult struct {
	Outcome    string `json:"outcome"`
	Email      string `json:"email"`
	WebhookURL string `json:"webhook-url"`
	// WebhookSecret is the webhook's signing secret, set only by the
	// set_contact call that made it (a new or changed webhook URL, or
	// new-secret): it is never shown again.
	WebhookSecret string `json:"webhook-secret,omitempty"`
	// WebhookSecretSet tells that a webhook secret is stored.
	WebhookSecretSet bool `json:"webhook-secret-set"`
	// UpdatedAt is when the details were last set; zero (omitted) if
	// never.
	UpdatedAt int64 `json:"updated-at,omitempty"`
}
