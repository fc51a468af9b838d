package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// runOrg handles `mtlsid org create|list|add-member`.
func runOrg(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var display, email, role string
	return dispatch(ctx, "org", []remoteCmd{{
		name:  "org create",
		usage: "mtlsid org create ORG [--display NAME] [--email ADDRESS]",
		nargs: 1,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&display, "display", "", "the organization's display name (default ORG)")
			fs.StringVar(&email, "email", "", "the organization's contact address")
		},
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.CreateOrg(ctx, r.args[0], display, email)
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "created organization %s (%q); you are its %s\n", res.Org, res.Name, res.Role)
			})
		},
	}, {
		name:  "org list",
		usage: "mtlsid org list",
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.Orgs(ctx)
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ORG\tROLE\tSINCE")
				for _, m := range res.Organizations {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Org, m.Role, day(m.Since))
				}
				tw.Flush()
			})
		},
	}, {
		name:  "org add-member",
		usage: `mtlsid org add-member ORG SERIAL --role "org. administrator"|"org. manager"|member`,
		nargs: 2,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&role, "role", "", `the member's role: "org. administrator", "org. manager" or "member" (administrator and manager are accepted for short)`)
		},
		check: func([]string) error { return needFlag("role", role) },
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.AddMember(ctx, r.args[0], r.args[1], orgRole(role))
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "the holder of %s is now %q in %s\n", res.SerialNumber, res.Role, res.Org)
			})
		},
	}}, args, stdout, stderr)
}

// orgRole expands the short names people type to the reference's role
// strings; anything else goes to the server as it is.
func orgRole(s string) string {
	switch s {
	case "administrator", "admin":
		return "org. administrator"
	case "manager":
		return "org. manager"
	}
	return s
}

// runService handles `mtlsid service create|list`.
func runService(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org string
	orgFlag := func(fs *flag.FlagSet) { fs.StringVar(&org, "org", "", "organization ID") }
	return dispatch(ctx, "service", []remoteCmd{{
		name:  "service create",
		usage: "mtlsid service create SERVICE --org ORG",
		nargs: 1,
		flags: orgFlag,
		check: func(args []string) error { return checkService(args[0], org) },
		run: func(ctx context.Context, r *remoteRun) error {
			o := org
			if o == "" {
				_, o, _ = strings.Cut(r.args[0], ".")
			}
			res, err := r.sc.CreateService(ctx, o, r.args[0])
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "created service %s\n", res.Service.Service)
				for _, d := range res.Domains {
					if d.Default {
						fmt.Fprintf(w, "default domain: %s (verified)\n", d.Domain)
					}
				}
			})
		},
	}, {
		name:  "service list",
		usage: "mtlsid service list --org ORG",
		flags: orgFlag,
		check: func([]string) error { return needFlag("org", org) },
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.Services(ctx, org)
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "SERVICE\tCREATED")
				for _, s := range res.Services {
					fmt.Fprintf(tw, "%s\t%s\n", s.Service, day(s.CreatedAt))
				}
				tw.Flush()
			})
		},
	}}, args, stdout, stderr)
}

// day formats epoch milliseconds as a date; zero as "-".
func day(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).Format(time.DateOnly)
}
