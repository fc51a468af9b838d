package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
)

// IdentityClient calls the Identity API (/v1) of an mtlsid server with a
// service's API certificate, which HTTP's transport must carry. It is safe
// for concurrent use.
type IdentityClient struct {
	// URL is the server's base URL, such as https://localhost:8443.
	URL  string
	HTTP *http.Client
}

// Reply is one answer of the Identity API: the wrapping object's name and
// its raw body.
type Reply struct {
	Status int
	Object string
	Body   json.RawMessage
}

// Outcome returns the answer's outcome string, when it has one.
func (r *Reply) Outcome() string {
	var o struct {
		Outcome string `json:"outcome"`
	}
	_ = json.Unmarshal(r.Body, &o)
	return o.Outcome
}

// Decode decodes the answer's object into v.
func (r *Reply) Decode(v any) error { return json.Unmarshal(r.Body, v) }

// Do sends one object (nil sends an empty body: with PUT, a ping) and
// returns the wrapped answer. Transport errors and answers that are not
// one wrapped object are errors; API outcomes, PB and ER included, are
// not: read them from the Reply.
func (c *IdentityClient) Do(ctx context.Context, method, object string, v any) (*Reply, error) {
	var body []byte
	if v != nil {
		b, err := json.Marshal(map[string]any{object: v})
		if err != nil {
			return nil, err
		}
		body = b
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+idwire.Path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(data, &env); err != nil || len(env) != 1 {
		return nil, fmt.Errorf("server answered %s with a body that is not one wrapped object", resp.Status)
	}
	for k, b := range env {
		return &Reply{Status: resp.StatusCode, Object: k, Body: b}, nil
	}
	panic("unreachable")
}

// Inquire sends an Identity-Inquiry for a serial (or an intent reference).
func (c *IdentityClient) Inquire(ctx context.Context, serial string) (*Reply, error) {
	return c.Do(ctx, http.MethodGet, idwire.ObjIdentityInquiry, idwire.IdentityInquiry{SerialNumber: serial})
}
