package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// runContact handles `mtlsid contact set|show`: where the expiry notices
// of the identity in DIR go.
func runContact(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var email, webhook string
	var newSecret, clear bool
	return dispatch(ctx, "contact", []remoteCmd{{
		name:  "contact set",
		usage: "mtlsid contact set --email ADDRESS [--webhook URL] [--new-secret] | --webhook URL | --clear",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&email, "email", "", "e-mail address for expiry notices")
			fs.StringVar(&webhook, "webhook", "", "webhook URL for expiry notices (https; http to loopback only)")
			fs.BoolVar(&newSecret, "new-secret", false, "make a new webhook signing secret even if the URL is unchanged")
			fs.BoolVar(&clear, "clear", false, "remove the contact details: no more expiry notices")
		},
		check: func([]string) error {
			switch {
			case clear && (email != "" || webhook != "" || newSecret):
				return &usageError{"contact set: --clear removes the contact details; drop --email, --webhook and --new-secret"}
			case !clear && email == "" && webhook == "":
				return &usageError{"contact set: give --email and/or --webhook (they replace what is stored), or --clear"}
			case newSecret && webhook == "":
				return &usageError{"contact set: --new-secret needs --webhook URL"}
			}
			return nil
		},
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.SetContact(ctx, sdk.ContactRequest{Email: email, WebhookURL: webhook, NewSecret: newSecret})
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				if res.Email == "" && res.WebhookURL == "" {
					fmt.Fprintln(w, "contact details removed: no expiry notices")
					return
				}
				printContact(w, res)
				if res.WebhookSecret != "" {
					fmt.Fprintf(w, "\nwebhook signing secret (shown only now; keep it with the receiver):\n%s\n", res.WebhookSecret)
					fmt.Fprintln(w, "each notice carries X-Mtlsid-Signature: sha256=HEX, the HMAC-SHA256 of the body under this secret (docs/notices.md)")
				}
			})
		},
	}, {
		name:  "contact show",
		usage: "mtlsid contact show",
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.Contact(ctx)
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				if res.Email == "" && res.WebhookURL == "" {
					fmt.Fprintln(w, "no contact details: no expiry notices (set some with mtlsid contact set --email ADDRESS)")
					return
				}
				printContact(w, res)
			})
		},
	}}, args, stdout, stderr)
}

func printContact(w io.Writer, c *wire.ContactResult) {
	fmt.Fprintf(w, "e-mail:  %s\nwebhook: %s\n", orDash(c.Email), orDash(c.WebhookURL))
	if c.WebhookSecretSet {
		fmt.Fprintln(w, "secret:  set (shown only when made; make a new one with --new-secret)")
	}
	fmt.Fprintf(w, "updated: %s\n", day(c.UpdatedAt))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
