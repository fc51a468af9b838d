package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// runIssueServiceIdentity handles `mtlsid issue-service-identity`: a new
// server certificate for the service now.
func runIssueServiceIdentity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serviceIdentity(ctx, "issue-service-identity", true, args, stdout, stderr)
}

// runUpdateService handles `mtlsid update-service`: a new server
// certificate only when one is due (none yet, two thirds of its life
// passed, or the verified domains changed). It prints "renewed" or
// "not due" first, as the reference's cron scripts expect.
func runUpdateService(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serviceIdentity(ctx, "update-service", false, args, stdout, stderr)
}

// serviceIdentity runs with one of the service's API certificates (--name
// in DIR) and writes DIR/service-id/<domain>.{key,cer,chain.pem,p12,password}.
func serviceIdentity(ctx context.Context, name string, force bool, args []string, stdout, stderr io.Writer) error {
	return remoteCmd{
		name:  name,
		usage: "mtlsid " + name + " [--server URL] [--ca FILE] [--dir DIR] [--name API-CERT-NAME]",
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.ServiceCertificate(ctx, force)
			if err != nil {
				return err
			}
			if res.Outcome == wire.OutcomeNotDue {
				return r.print(res, func(w io.Writer) { fmt.Fprintf(w, "not due: the server certificate of %s is current\n", res.Service) })
			}
			files, err := serverKeyFiles(&res.CertificateResult)
			if err != nil {
				return err
			}
			base := filepath.Join(r.dir, "service-id", safeName(res.Name))
			if err := writeFiles(base, files); err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "renewed server certificate of %s for %s: serial %s, valid until %s\nfiles: %s.{key,cer,chain.pem,p12,password}\n",
					res.Service, strings.Join(res.DNSNames, ", "), res.SerialNumber, time.UnixMilli(res.NotAfter).Format(time.RFC3339), base)
			})
		},
	}.exec(ctx, args, stdout, stderr)
}

// runListServiceRoles handles `mtlsid list-service-roles`: your identity's
// roles in every service, as JSON (as the reference prints them).
func runListServiceRoles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return remoteCmd{
		name:  "list-service-roles",
		usage: "mtlsid list-service-roles [--server URL] [--ca FILE] [--dir DIR] [--name NAME]",
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.ServiceRoles(ctx)
			if err != nil {
				return err
			}
			return writeJSON(r.stdout, res)
		},
	}.exec(ctx, args, stdout, stderr)
}
