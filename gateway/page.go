package gateway

import (
	"html/template"
	"math/big"
	"net/http"

	"github.com/mtlsid/mtlsid/sdk"
)

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5;color:#222}
a.button{display:inline-block;padding:.5rem 1rem;background:#1a5fb4;color:#fff;border-radius:.3rem;text-decoration:none}
code{background:#eee;padding:0 .2rem}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p>
{{if .Missing}}<p>Missing: {{range $i, $r := .Missing}}{{if $i}}, {{end}}<code>{{$r}}</code>{{end}}.</p>{{end}}
{{if .Roles}}<p>Required: {{if .AnyOf}}one of {{end}}{{range $i, $r := .Roles}}{{if $i}}, {{end}}<code>{{$r}}</code>{{end}}.</p>{{end}}
{{if .Cert}}<p>Certificate seen: <code>{{.Cert}}</code></p>{{else}}<p>No certificate was presented.</p>{{end}}
{{if .SignupURL}}<p><a class="button" href="{{.SignupURL}}">Get a certificate</a></p>{{end}}
{{if .RetryURL}}<p><a href="{{.RetryURL}}">Try again</a></p>{{end}}
{{if .Outcome}}<p><small>{{.Outcome}}</small></p>{{end}}
</body></html>
`))

type pageData struct {
	sdk.Page
	Missing []string
	AnyOf   bool
	Cert    string
}

// RenderPage is the gateway's explanatory page, for sdk.WithPage: the
// sdk's reasons plus the certificate the gateway saw. It never fails
// silently: a page is always written.
func RenderPage(w http.ResponseWriter, r *http.Request, p sdk.Page) {
	render(w, r, pageData{Page: p})
}

func render(w http.ResponseWriter, r *http.Request, d pageData) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		c := r.TLS.PeerCertificates[0]
		d.Cert = c.Subject.String() + ", serial 0x" + new(big.Int).Set(c.SerialNumber).Text(16)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(d.Status)
	_ = pageTemplate.Execute(w, d)
}
