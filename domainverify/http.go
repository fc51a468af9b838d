package domainverify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/mtlsid/mtlsid"
)

// maxBody is the most of the challenge file that is read.
const maxBody = 4 << 10

// VerifyHTTP checks only the HTTP method: that
// http://domain/.well-known/mtlsid-challenge/token (on Config.HTTPPort)
// answers 200 with a body of at most 4 KiB that, trimmed of white space, is
// token. It returns nil if so.
//
// The request goes only to the addresses domain resolves to, through no
// proxy, and no redirect is followed: a 3xx fails like any other status. A
// redirect, even to the same host, could lead to another port or to HTTPS
// under a certificate this package has no business judging, and a service
// that can publish the file can publish it at this one URL.
//
// Otherwise the error is KindInvalid for bad input (no I/O), KindForbidden
// if the domain answered without the proof (no address, connection refused,
// another status or body), or KindUnavailable if no answer came (resolver
// failure, time-out), which is worth retrying. The whole exchange takes at
// most Config.Timeout.
func (v *Verifier) VerifyHTTP(ctx context.Context, domain, token string) error {
	if err := checkInput(domain, token); err != nil {
		return err
	}
	return v.done(ctx, MethodHTTP, domain, token, v.checkHTTP(ctx, domain, token))
}

func (v *Verifier) checkHTTP(ctx context.Context, domain, token string) error {
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	u := url.URL{Scheme: "http", Host: v.hostPort(domain), Path: WellKnownPath(token)}
	where := u.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return &mtlsid.Error{Kind: mtlsid.KindInternal, Message: "build challenge request", Err: err}
	}
	req.Header.Set("User-Agent", "mtlsid-domainverify/1")
	resp, err := v.client.Do(req)
	if err != nil {
		return v.httpFailure(domain, where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("%s answered %d %s", where, resp.StatusCode, http.StatusText(resp.StatusCode))
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			msg += " (redirects are not followed)"
		}
		return mtlsid.Errorf(mtlsid.KindForbidden, "%s", msg)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return v.httpFailure(domain, where, err)
	}
	if len(body) > maxBody {
		return mtlsid.Errorf(mtlsid.KindForbidden, "%s answered 200 with a body over %d bytes", where, maxBody)
	}
	if strings.TrimSpace(string(body)) != token {
		return mtlsid.Errorf(mtlsid.KindForbidden, "%s answered 200 but the body (%d bytes) is not the challenge", where, len(body))
	}
	return nil
}

// hostPort is the URL host for domain: the bare name on port 80.
func (v *Verifier) hostPort(domain string) string {
	if v.port == 80 {
		return domain
	}
	return net.JoinHostPort(domain, strconv.Itoa(v.port))
}

// httpFailure classifies an error of the HTTP exchange. The *url.Error
// layer is dropped from the cause, since it repeats the URL and token.
func (v *Verifier) httpFailure(domain, where string, err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	hostPort := net.JoinHostPort(domain, strconv.Itoa(v.port))
	fail := func(kind mtlsid.Kind, format string, args ...any) error {
		return &mtlsid.Error{Kind: kind, Message: fmt.Sprintf(format, args...), Err: err}
	}
	if dnsErr, ok := errors.AsType[*net.DNSError](err); ok {
		v.nameServer(err)
		if dnsErr.IsNotFound {
			return fail(mtlsid.KindForbidden, "%s has no address", domain)
		}
		return fail(mtlsid.KindUnavailable, "could not resolve %s; try again later", domain)
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fail(mtlsid.KindUnavailable, "no answer from %s within %v; try again later", where, v.timeout)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fail(mtlsid.KindForbidden, "connection to %s refused", hostPort)
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "dial" {
		return fail(mtlsid.KindUnavailable, "could not connect to %s; try again later", hostPort)
	}
	return fail(mtlsid.KindForbidden, "%s did not answer with valid HTTP", where)
}

// dialDomain is the transport's only way out. It dials nothing but a valid
// domain on the configured port, resolved as an absolute name by the
// configured resolver; checkHTTP never asks for anything else, so a refusal
// here means a bug, not an attack that got through.
func (v *Verifier) dialDomain(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || CheckDomain(host) != nil || port != strconv.Itoa(v.port) {
		return nil, fmt.Errorf("domainverify: refusing to dial %q", addr)
	}
	return v.dialer.DialContext(ctx, network, net.JoinHostPort(host+".", port))
}
