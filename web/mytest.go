package web

import (
	"crypto/tls"
	"net/http"
	"sort"
	"strings"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
)

// identityHeaders are the request headers that carry an identity from a
// proxy: the test page lists those it saw, so an integrator can check that
// nothing forwards (or forges) them.
var identityHeaders = []string{
	"Client-Cert", "Client-Cert-Chain", "Forwarded", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Client-Cert",
	"X-Real-Ip", "X-Ssl-Client-Cert", "X-Ssl-Client-Serial", "X-Ssl-Client-Dn", "X-Ssl-Client-Verify",
}

type testData struct {
	Services []authority.ServiceView
	Calls    []mtlsid.Identification // newest first
	Last     *mtlsid.Identification
	Request  requestDetails
}

type requestDetails struct {
	Method     string // how the person was last identified, or ""
	Serial     string
	Device     string
	DeviceType string
	TLSVersion string
	Cipher     string
	ALPN       string
	ClientAddr string
	Headers    [][2]string
}

func (p *Pages) myTest(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "Test page")
	if me == nil {
		return
	}
	svcs, err := p.auth.MyServices(r.Context(), me)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	calls := p.auth.RecentCalls(me.IdentityID)
	d := testData{Services: svcs}
	for i := len(calls) - 1; i >= 0; i-- {
		d.Calls = append(d.Calls, calls[i])
	}
	rd := requestDetails{Serial: me.Serial, Device: me.Name, DeviceType: me.DeviceType, ClientAddr: r.RemoteAddr}
	if len(d.Calls) > 0 {
		last := d.Calls[0]
		d.Last = &last
		rd.Method = last.Method
	}
	if r.TLS != nil {
		rd.TLSVersion = tls.VersionName(r.TLS.Version)
		rd.Cipher = tls.CipherSuiteName(r.TLS.CipherSuite)
		rd.ALPN = r.TLS.NegotiatedProtocol
	}
	for _, h := range identityHeaders {
		if vs := r.Header.Values(h); len(vs) > 0 {
			rd.Headers = append(rd.Headers, [2]string{h, strings.Join(vs, ", ")})
		}
	}
	for k, vs := range r.Header {
		if strings.HasPrefix(k, "X-Mtls-") || strings.HasPrefix(k, "X-Identity-") {
			rd.Headers = append(rd.Headers, [2]string{k, strings.Join(vs, ", ")})
		}
	}
	sort.Slice(rd.Headers, func(i, j int) bool { return rd.Headers[i][0] < rd.Headers[j][0] })
	d.Request = rd
	p.render(w, r, http.StatusOK, "mytest.html", view{Title: "Test page", Nav: "test", Me: me, Data: d})
}
