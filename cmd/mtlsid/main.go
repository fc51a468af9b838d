// Command mtlsid is the mtlsid identity service in one binary: the
// authority (serve), the operator's local commands (ca, token, audit) and
// the client CLI (enroll, renew, update, list-devices, get-trust-chain,
// revoke, contact, and the administration of organizations, services, domains,
// roles and API certificates). This package only wires the others together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "mtlsid:", err)
	var u *usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the authority (CA, APIs, OCSP, CRL)", runServe},
		{"ca", "manage the certificate authority (ca init)", runCA},
		{"token", "mint enrollment tokens (token create)", runToken},
		{"audit", "check the audit chain (audit verify)", runAudit},
		{"migrate", "copy a SQLite database into PostgreSQL, checked (migrate --from --to)", runMigrate},
		{"enroll", "enroll this device or agent with a token", runEnroll},
		{"renew", "renew this device's certificate now", runRenew},
		{"update", "renew this device's certificate if due (2/3 of its life)", runUpdate},
		{"list-devices", "list the active certificates of your identity", runListDevices},
		{"get-trust-chain", "download the authority's CA chain", runGetTrustChain},
		{"revoke", "revoke one of your certificates by serial", runRevoke},
		{"org", "organizations: org create|list|add-member", runOrg},
		{"service", "services: service create|list", runService},
		{"domain", "a service's domains: domain add|verify|list", runDomain},
		{"role", "a service's roles: role define|grant|revoke|list", runRole},
		{"apicert", "a service's API certificates: apicert issue|list|revoke", runAPICert},
		{"assist", "mint a 5-minute token to enroll an agent of a service", runAssist},
		{"issue-service-identity", "with an API certificate: issue the service's server certificate now", runIssueServiceIdentity},
		{"update-service", "with an API certificate: renew the service's server certificate if due", runUpdateService},
		{"list-service-roles", "your roles in every service, as JSON", runListServiceRoles},
		{"inquire", "with an API certificate: ask who holds a certificate (Identity-Inquiry)", runInquire},
		{"contact", "where your expiry notices go: contact set|show", runContact},
		{"agent", "keep this machine's certificates fresh (daemon, or --once for cron)", runAgent},
		{"gateway", "the mTLS reverse proxy: HTTP perimeters in front of your services", runGateway},
		{"bench", "seed test identities, or load a server with inquiries (loopback only)", runBench},
	}
}

// run is the whole program: it returns instead of exiting, so tests call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return &usageError{"no command given"}
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return &usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mtlsid COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-22s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'mtlsid COMMAND -h' for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mtlsid "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args, allowing flags after positional arguments (`mtlsid
// enroll TOKEN --server URL`), and turns flag errors into usage errors. The
// positional arguments are left in fs.Args()... as returned by positional.
func parse(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return &usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	// Parsing "--" alone leaves the flags as they are and fs.Args() = pos.
	return fs.Parse(append([]string{"--"}, pos...))
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}
