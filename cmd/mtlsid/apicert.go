package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mtlsid/mtlsid/internal/atomicfile"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// runAPICert handles `mtlsid apicert issue|list|revoke`.
func runAPICert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var service, org, agent, out string
	var dev, p12 bool
	svcFlags := func(fs *flag.FlagSet) {
		fs.StringVar(&service, "service", "", "service: NAME with --org, or NAME.ORG")
		fs.StringVar(&org, "org", "", "organization ID")
	}
	needService := func([]string) error { return checkService(service, org) }
	return dispatch(ctx, "apicert", []remoteCmd{{
		name:  "apicert issue",
		usage: "mtlsid apicert issue --service SERVICE [--org ORG] --out DIR [--agent-name NAME] [--dev] [--p12]",
		flags: func(fs *flag.FlagSet) {
			svcFlags(fs)
			fs.StringVar(&out, "out", "", "directory to write AGENT.key, .cer and .chain.pem to (0600)")
			fs.StringVar(&agent, "agent-name", "api", "the certificate's name (CN), and its files' name")
			fs.BoolVar(&dev, "dev", false, "a development certificate: revoking it undoes every change made with it")
			fs.BoolVar(&p12, "p12", false, "let the server make the key and also write AGENT.p12 and AGENT.password (default: the key is made here and never leaves)")
		},
		check: func(args []string) error {
			if err := needService(args); err != nil {
				return err
			}
			return needFlag("out", out)
		},
		run: func(ctx context.Context, r *remoteRun) error {
			return issueAPICert(ctx, r, sdk.APICertRequest{Service: service, Org: org, AgentName: agent, Development: dev}, out, p12)
		},
	}, {
		name:  "apicert list",
		usage: "mtlsid apicert list --service SERVICE [--org ORG]",
		flags: svcFlags,
		check: needService,
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.APICerts(ctx, service, org)
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "SERIAL\tNAME\tSTATUS\tEXPIRES\tDEV")
				for _, c := range res.Certificates {
					mark := ""
					if c.Development {
						mark = "yes"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.SerialNumber, c.Name, c.Status, day(c.NotAfter), mark)
				}
				tw.Flush()
			})
		},
	}, {
		name:  "apicert revoke",
		usage: "mtlsid apicert revoke SERIAL",
		nargs: 1,
		run: func(ctx context.Context, r *remoteRun) error {
			res, err := r.sc.RevokeAPICert(ctx, r.args[0])
			if err != nil {
				return err
			}
			return r.print(res, func(w io.Writer) { fmt.Fprintf(w, "revoked %s\n", res.SerialNumber) })
		},
	}}, args, stdout, stderr)
}

// issueAPICert asks for the certificate and writes its files to out. By
// default the key is made here and only a CSR is sent.
func issueAPICert(ctx context.Context, r *remoteRun, req sdk.APICertRequest, out string, p12 bool) error {
	base := filepath.Join(out, safeName(req.AgentName))
	if _, err := os.Stat(base + ".cer"); err == nil {
		return fmt.Errorf("%s.cer exists: choose another --agent-name or --out", base)
	}
	var files []file
	if p12 {
		res, err := r.sc.IssueAPICert(ctx, req)
		if err != nil {
			return err
		}
		if files, err = serverKeyFiles(&res.CertificateResult); err != nil {
			return err
		}
		return finishAPICert(r, res, base, files, out)
	}
	key, csr, err := newKeyAndCSR(req.AgentName)
	if err != nil {
		return err
	}
	req.CSR = base64.StdEncoding.EncodeToString(csr)
	res, err := r.sc.IssueAPICert(ctx, req)
	if err != nil {
		return err
	}
	if files, err = ownKeyFiles(key, &res.CertificateResult); err != nil {
		return err
	}
	return finishAPICert(r, res, base, files, out)
}

func finishAPICert(r *remoteRun, res *wire.APICertResult, base string, files []file, out string) error {
	if err := writeFiles(base, files); err != nil {
		return err
	}
	if err := r.copyCA(out); err != nil {
		return err
	}
	var exts []string
	for _, f := range files {
		exts = append(exts, strings.TrimPrefix(f.ext, "."))
	}
	return r.print(res, func(w io.Writer) {
		kind := "API certificate"
		if res.Development {
			kind = "development API certificate"
		}
		fmt.Fprintf(w, "issued %s %q for %s: serial %s, valid until %s\nfiles: %s.{%s}\n",
			kind, res.Name, res.Service, res.SerialNumber, time.UnixMilli(res.NotAfter).Format(time.RFC3339), base, strings.Join(exts, ","))
		fmt.Fprintf(w, "use it with: --dir %s --name %s\n", out, safeName(res.Name))
	})
}

// copyCA copies the CA file this command trusts into dir/ca.pem, unless
// one is there, so that commands using dir's identities trust it too.
func (c *clientFlags) copyCA(dir string) error {
	dst := filepath.Join(dir, "ca.pem")
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	src := c.caFile
	if src == "" {
		src = filepath.Join(c.dir, "ca.pem")
	}
	b, err := os.ReadFile(src)
	if errors.Is(err, os.ErrNotExist) && c.caFile == "" {
		return nil // the system trust store is in use
	}
	if err != nil {
		return err
	}
	return atomicfile.Write(dst, pemOrDER(b), 0o644)
}
