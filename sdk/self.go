package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// SelfClient calls the self-authority API of an mtlsid server. Its zero
// value is not usable: set URL and HTTP (whose transport carries the TLS
// configuration: trusted CA and, for calls that need one, the client
// certificate). It is safe for concurrent use.
type SelfClient struct {
	// URL is the server's base URL, such as https://localhost:8443.
	URL  string
	HTTP *http.Client
	// Trace, if set, receives each request and response body (the CLI's
	// -v). Bodies carry keys and passwords: never point it at a log.
	Trace io.Writer
}

// APIError is an error answered by the server.
type APIError struct {
	Status  int
	Kind    string // the stable error kind, see mtlsid.Kind
	Message string
}

func (e *APIError) Error() string {
	if e.Kind != "" {
		return fmt.Sprintf("%s (%s)", e.Message, e.Kind)
	}
	return e.Message
}

// Call performs one operation and decodes its result into result.
func (c *SelfClient) Call(ctx context.Context, op string, args wire.Args, result any) error {
	a, err := json.Marshal(args)
	if err != nil {
		return err
	}
	body, err := json.Marshal(wire.Request{Operation: op, Args: a})
	if err != nil {
		return err
	}
	if c.Trace != nil {
		fmt.Fprintf(c.Trace, "> POST %s%s\n> %s\n", strings.TrimRight(c.URL, "/"), wire.Path, body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+wire.Path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if c.Trace != nil {
		fmt.Fprintf(c.Trace, "< %s\n< %s\n", resp.Status, data)
	}
	var out struct {
		Error  string          `json:"error"`
		Kind   string          `json:"kind"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return &APIError{Status: resp.StatusCode, Message: fmt.Sprintf("server answered %s with a body that is not the API's JSON", resp.Status)}
	}
	if out.Error != "" || resp.StatusCode != http.StatusOK {
		msg := out.Error
		if msg == "" {
			msg = "server answered " + resp.Status
		}
		return &APIError{Status: resp.StatusCode, Kind: out.Kind, Message: msg}
	}
	if result == nil {
		return nil
	}
	return json.Unmarshal(out.Result, result)
}

// Enroll enrolls with a token; see wire.Args for the fields it reads.
func (c *SelfClient) Enroll(ctx context.Context, args wire.Args) (*wire.CertificateResult, error) {
	var r wire.CertificateResult
	return &r, c.Call(ctx, wire.OpEnroll, args, &r)
}

// Renew renews the certificate the client authenticates with.
func (c *SelfClient) Renew(ctx context.Context, args wire.Args) (*wire.CertificateResult, error) {
	var r wire.CertificateResult
	return &r, c.Call(ctx, wire.OpRenewCertificate, args, &r)
}

// Devices lists the active certificates of the caller's identity.
func (c *SelfClient) Devices(ctx context.Context) (*wire.DevicesResult, error) {
	var r wire.DevicesResult
	return &r, c.Call(ctx, wire.OpGetActiveIdentites, wire.Args{}, &r)
}

// Revoke revokes one of the caller's own certificates.
func (c *SelfClient) Revoke(ctx context.Context, serial string) (*wire.RevokeResult, error) {
	var r wire.RevokeResult
	return &r, c.Call(ctx, wire.OpRevoke, wire.Args{SerialNumber: serial}, &r)
}

// TrustChain downloads the CA chain in PEM.
func (c *SelfClient) TrustChain(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+"/download/trust-chain?format=pem", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &APIError{Status: resp.StatusCode, Message: "trust chain download answered " + resp.Status}
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}
