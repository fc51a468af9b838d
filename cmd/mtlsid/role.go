package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
)

// runRole handles `mtlsid role define|grant|revoke|list`: the roles a
// service defines and grants to people.
func runRole(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var service, org string
	svcFlags := func(fs *flag.FlagSet) {
		fs.StringVar(&service, "service", "", "service: NAME with --org, or NAME.ORG")
		fs.StringVar(&org, "org", "", "organization ID")
	}
	needService := func([]string) error { return checkService(service, org) }
	change := func(grant bool) func(ctx context.Context, r *remoteRun) error {
		return func(ctx context.Context, r *remoteRun) error {
			call := r.sc.GrantRole
			if !grant {
				call = r.sc.RevokeRole
			}
			res, err := call(ctx, service, org, r.args[0], r.args[1])
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s %q in %s for the holder of %s\n", res.Outcome, res.Role, res.Service, res.SerialNumber)
			})
		}
	}
	return dispatch(ctx, "role", []remoteCmd{{
		name:  "role define",
		usage: "mtlsid role define ROLE --service SERVICE [--org ORG]",
		nargs: 1,
		flags: svcFlags,
		check: needService,
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.DefineRole(ctx, service, org, r.args[0])
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) { fmt.Fprintf(w, "defined role %q in %s\n", res.Role, res.Service) })
		},
	}, {
		name:  "role grant",
		usage: "mtlsid role grant SERIAL ROLE --service SERVICE [--org ORG]",
		nargs: 2,
		flags: svcFlags,
		check: needService,
		run:   change(true),
	}, {
		name:  "role revoke",
		usage: "mtlsid role revoke SERIAL ROLE --service SERVICE [--org ORG]",
		nargs: 2,
		flags: svcFlags,
		check: needService,
		run:   change(false),
	}, {
		name:  "role list",
		usage: "mtlsid role list --service SERVICE [--org ORG]",
		flags: svcFlags,
		check: needService,
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.Roles(ctx, service, org)
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "roles of %s: %v\n", res.Service, res.Roles)
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "IDENTITY\tROLE\tSINCE")
				for _, g := range res.Grants {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", g.Identity, g.Role, day(g.Since))
				}
				tw.Flush()
			})
		},
	}}, args, stdout, stderr)
}
