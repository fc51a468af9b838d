package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// isRemote tells the two forms of `token create` apart: with --server and
// without --data or --database the token is minted by the server for the
// identity in DIR; otherwise locally by the operator, as before.
func isRemote(args []string) bool {
	return hasFlag(args, "server") && !hasFlag(args, "data") && !hasFlag(args, "database")
}

// hasFlag reports whether args set the flag name, in any of the forms the
// flag package accepts (-f, --f, -f=v, --f=v).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// runRemoteToken handles `mtlsid token create --server URL`: a token that
// enrolls another device of your own identity or, with --service, one
// agent of a service you manage (assist).
func runRemoteToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var service, org, label, purpose string
	var ttl time.Duration
	var quiet bool
	return remoteCmd{
		name:  "token create",
		usage: "mtlsid token create --server URL [--dir DIR] [--name NAME] [--label TEXT] [--ttl 24h] [--service SERVICE [--org ORG]] [-q]",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&service, "service", "", "mint an agent token for this service you manage (NAME with --org, or NAME.ORG), valid 5 minutes")
			fs.StringVar(&org, "org", "", "organization ID")
			fs.StringVar(&label, "label", "", "what the token is for, for the audit log")
			fs.DurationVar(&ttl, "ttl", 0, "how long a device token stays valid (default the server's, 24h)")
			fs.StringVar(&purpose, "purpose", "", "device (default), or agent with --service")
			fs.BoolVar(&quiet, "q", false, "print only the token")
		},
		check: func([]string) error {
			switch {
			case service != "" && purpose != "" && purpose != "agent":
				return &usageError{"token create: --service mints an agent token; drop --purpose " + purpose}
			case service != "":
				return checkService(service, org)
			case purpose == "agent":
				return &usageError{"token create: an agent token needs --service SERVICE (a service you manage)"}
			case purpose != "" && purpose != "device":
				return &usageError{"token create: --purpose must be device or agent"}
			}
			return nil
		},
		run: func(ctx context.Context, r *remoteRun) error {
			if service != "" {
				return assist(ctx, r, service, org, quiet)
			}
			res, err := r.sc.CreateToken(ctx, label, ttl)
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				if quiet {
					fmt.Fprintln(w, res.Token)
					return
				}
				fmt.Fprintf(w, "%s\n\none-time token for another device of your identity, valid until %s\nenroll with: mtlsid enroll %s --server %s%s\n",
					res.Token, time.UnixMilli(res.ExpiresAt).Local().Format(time.RFC1123), res.Token, r.server, r.caHint())
			})
		},
	}.exec(ctx, args, stdout, stderr)
}

// runAssist handles `mtlsid assist SERVICE`, the reference's assist-enroll.
func runAssist(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org string
	var quiet bool
	return remoteCmd{
		name:  "assist",
		usage: "mtlsid assist SERVICE [--org ORG] [-q]",
		nargs: 1,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&org, "org", "", "organization ID, unless SERVICE is NAME.ORG")
			fs.BoolVar(&quiet, "q", false, "print only the token")
		},
		check: func(args []string) error { return checkService(args[0], org) },
		run:   func(ctx context.Context, r *remoteRun) error { return assist(ctx, r, r.args[0], org, quiet) },
	}.exec(ctx, args, stdout, stderr)
}

func assist(ctx context.Context, r *remoteRun, service, org string, quiet bool) error {
	res, err := r.sc.Assist(ctx, service, org)
	if err != nil {
		return err
	}
	return r.print(res, func(w io.Writer) {
		if quiet {
			fmt.Fprintln(w, res.Token)
			return
		}
		fmt.Fprintf(w, "%s\n\none-time token for one agent of %s, valid until %s (5 minutes)\nenroll the agent with: mtlsid enroll %s --server %s%s --name AGENT\n",
			res.Token, res.ManagedService, time.UnixMilli(res.ExpiresAt).Local().Format(time.Kitchen), res.Token, r.server, r.caHint())
	})
}

// caHint is the --ca flag the enrolling machine needs, naming the CA file
// this command trusts, or "" when that is the system store.
func (c *clientFlags) caHint() string {
	if c.caFile != "" {
		return " --ca " + c.caFile
	}
	if f := filepath.Join(c.dir, "ca.pem"); fileExists(f) {
		return " --ca " + f
	}
	return ""
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
