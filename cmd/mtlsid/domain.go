package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// runDomain handles `mtlsid domain add|verify|list`.
func runDomain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var service, org string
	svcFlags := func(fs *flag.FlagSet) {
		fs.StringVar(&service, "service", "", "service: NAME with --org, or NAME.ORG")
		fs.StringVar(&org, "org", "", "organization ID")
	}
	needService := func([]string) error { return checkService(service, org) }
	return dispatch(ctx, "domain", []remoteCmd{{
		name:  "domain add",
		usage: "mtlsid domain add DOMAIN --service SERVICE [--org ORG]",
		nargs: 1,
		flags: svcFlags,
		check: needService,
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.AddDomain(ctx, service, org, r.args[0])
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) { printChallenge(w, &res.Domain) })
		},
	}, {
		name:  "domain verify",
		usage: "mtlsid domain verify DOMAIN",
		nargs: 1,
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.VerifyDomain(ctx, r.args[0])
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "verified %s for service %s (%s)\n", res.Domain.Domain, res.Service, res.Method)
			})
		},
	}, {
		name:  "domain list",
		usage: "mtlsid domain list --service SERVICE [--org ORG]",
		flags: svcFlags,
		check: needService,
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.Domains(ctx, service, org)
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "DOMAIN\tSTATUS\tVERIFIED")
				for _, d := range res.Domains {
					status := "verified (" + d.Method + ")"
					if !d.Verified {
						status = "pending: publish TXT " + d.TXTName + " = " + d.TXTValue
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Domain, status, day(d.VerifiedAt))
				}
				tw.Flush()
			})
		},
	}}, args, stdout, stderr)
}

// printChallenge says exactly what to publish to prove control of a
// domain, in the forms people paste: a zone-file line and a URL.
func printChallenge(w io.Writer, d *wire.Domain) {
	fmt.Fprintf(w, "domain %s added to service %s, not yet verified.\n\n", d.Domain, d.Service)
	fmt.Fprintf(w, "Prove you control it in one of two ways:\n\n")
	fmt.Fprintf(w, "1. DNS: publish this TXT record\n\n    %s.  300  IN  TXT  %q\n\n", d.TXTName, d.TXTValue)
	fmt.Fprintf(w, "2. HTTP: serve this URL over plain HTTP (port 80, no redirect), its body being exactly\n   %s\n\n    %s\n\n", d.Challenge, d.HTTPURL)
	fmt.Fprintf(w, "Then run: mtlsid domain verify %s\n", d.Domain)
}
