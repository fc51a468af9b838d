package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"

	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
	"github.com/mtlsid/mtlsid/sdk"
)

// runInquire handles `mtlsid inquire SERIAL`: an Identity-Inquiry made
// with a service's API certificate (--name in DIR). It prints the wrapped
// answer and exits 0 whatever the outcome, PB and ER included, as the
// reference's CLI does: scripts read the outcome from the JSON. Only a
// failure to get an answer at all exits non-zero.
func runInquire(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var service string
	c, rest, err := clientCommand("inquire", stderr, args, func(fs *flag.FlagSet) {
		fs.StringVar(&service, "service", "", "ask relative to another service of your organization (its ID)")
	})
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return &usageError{"usage: mtlsid inquire SERIAL [--service ID] [--server URL] [--ca FILE] [--dir DIR] [--name API-CERT-NAME]"}
	}
	hc, err := c.httpClient(true)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ic := &sdk.IdentityClient{URL: c.server, HTTP: hc}
	reply, err := ic.Do(ctx, http.MethodGet, idwire.ObjIdentityInquiry, idwire.IdentityInquiry{SerialNumber: rest[0], Service: service})
	if err != nil {
		return fmt.Errorf("inquire: %w", err)
	}
	return writeJSON(stdout, map[string]json.RawMessage{reply.Object: reply.Body})
}
