package sdk

import (
	"html/template"
	"net/http"
)

// Page is what the middleware shows instead of the handler.
type Page struct {
	// Status is the HTTP status to answer: 401 (no certificate), 403
	// (refused, or a role missing), 502 (a trusted proxy sent a malformed
	// header), 503 (the authority cannot be reached).
	Status int
	// Title and Message explain, in words for people.
	Title, Message string
	// Outcome is the authority's outcome, when there is one.
	Outcome string
	// SignupURL leads to enrollment; RetryURL reloads the page.
	SignupURL, RetryURL string
	// Roles are the roles required, when one is missing.
	Roles []string
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5;color:#222}
a.button{display:inline-block;padding:.5rem 1rem;background:#1a5fb4;color:#fff;border-radius:.3rem;text-decoration:none}
code{background:#eee;padding:0 .2rem}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p>
{{if .Roles}}<p>Required: {{range $i, $r := .Roles}}{{if $i}}, {{end}}<code>{{$r}}</code>{{end}}.</p>{{end}}
{{if .SignupURL}}<p><a class="button" href="{{.SignupURL}}">Get a certificate</a></p>{{end}}
{{if .RetryURL}}<p><a href="{{.RetryURL}}">Try again</a></p>{{end}}
{{if .Outcome}}<p><small>{{.Outcome}}</small></p>{{end}}
</body></html>
`))

func defaultPage(w http.ResponseWriter, _ *http.Request, p Page) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = pageTemplate.Execute(w, p)
}
