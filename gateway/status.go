package gateway

import (
	"crypto/x509"
	"encoding/json"
	"html/template"
	"net/http"
	"time"
)

// Status is what the admin status page shows (GET /status.json on the
// admin listener).
type Status struct {
	// Generation counts configurations: 1 at start, +1 per reload.
	Generation uint64    `json:"generation"`
	LoadedAt   time.Time `json:"loaded_at"`
	Reloads    struct {
		OK        int64  `json:"ok"`
		Failed    int64  `json:"failed"`
		LastError string `json:"last_error,omitempty"`
	} `json:"reloads"`
	Perimeters []PerimeterStatus `json:"perimeters"`
	Admin      *CertStatus       `json:"admin_certificate,omitempty"`
	Agent      *CertStatus       `json:"agent_certificate,omitempty"`
	Cache      struct {
		Entries int    `json:"entries"`
		Hits    uint64 `json:"hits"`
		Misses  uint64 `json:"misses"`
	} `json:"identity_cache"`
}

// PerimeterStatus is one HTTP perimeter.
type PerimeterStatus struct {
	Name        string           `json:"name"`
	Listen      string           `json:"listen"`
	Address     string           `json:"address,omitempty"` // bound
	Hostnames   []string         `json:"hostnames"`
	Mode        string           `json:"mode"`
	ClientCert  string           `json:"client_cert"`
	Certificate *CertStatus      `json:"certificate,omitempty"`
	Upstreams   []UpstreamStatus `json:"upstreams"`
}

// CertStatus is a certificate the gateway presents.
type CertStatus struct {
	Subject  string    `json:"subject"`
	Serial   string    `json:"serial"` // 0x hex
	DNSNames []string  `json:"dns_names,omitempty"`
	NotAfter time.Time `json:"not_after"`
	Auto     bool      `json:"auto,omitempty"` // from the authority (tls.auto)
}

// UpstreamStatus is one upstream's health.
type UpstreamStatus struct {
	URL       string    `json:"url"`
	Up        bool      `json:"up"`
	DownUntil time.Time `json:"down_until,omitzero"`
}

func certStatus(leaf *x509.Certificate, auto bool) *CertStatus {
	if leaf == nil {
		return nil
	}
	return &CertStatus{Subject: leaf.Subject.String(), Serial: "0x" + leaf.SerialNumber.Text(16),
		DNSNames: leaf.DNSNames, NotAfter: leaf.NotAfter, Auto: auto}
}

// Status returns the gateway's current state.
func (g *Gateway) Status() Status {
	st := g.cur.Load()
	var s Status
	s.Generation, s.LoadedAt = st.gen, st.loaded
	s.Reloads.OK, s.Reloads.Failed = g.reloadsOK.Load(), g.reloadsFailed.Load()
	if e := g.lastReloadErr.Load(); e != nil {
		s.Reloads.LastError = *e
	}
	g.mu.Lock()
	bound := map[string]string{}
	for k, l := range g.listeners {
		bound[k] = l.ln.Addr().String()
	}
	g.mu.Unlock()
	now := time.Now()
	for _, key := range st.keys {
		gr, ok := st.sites[key].(*group)
		if !ok {
			continue
		}
		for _, p := range gr.perimeters {
			ps := PerimeterStatus{Name: p.cfg.Name, Listen: gr.addr, Address: bound[key], Hostnames: p.cfg.Hostnames,
				Mode: p.cfg.Mode, ClientCert: p.cfg.ClientCert, Certificate: certStatus(p.cert.leaf(), p.cfg.TLS.Auto)}
			if ps.Hostnames == nil {
				ps.Hostnames = []string{}
			}
			for _, b := range p.up.backends {
				us := UpstreamStatus{URL: b.raw, Up: !b.down(now)}
				if !us.Up {
					us.DownUntil = time.Unix(0, b.downUntil.Load())
				}
				ps.Upstreams = append(ps.Upstreams, us)
			}
			s.Perimeters = append(s.Perimeters, ps)
		}
	}
	if st.admin != nil {
		s.Admin = certStatus(st.admin.cert.leaf(), st.admin.cfg.TLS.Auto)
	}
	if st.agent != nil {
		s.Agent = certStatus(st.agent.Leaf(), false)
	}
	cs := st.mw.CacheStats()
	s.Cache.Entries, s.Cache.Hits, s.Cache.Misses = cs.Size, cs.Hits+g.retiredHits.Load(), cs.Misses+g.retiredMisses.Load()
	return s
}

func (g *Gateway) serveStatusJSON(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(g.Status())
}

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>mtlsid gateway status</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left;vertical-align:top}
.down{color:#b00;font-weight:bold}.up{color:#070}code{background:#eee;padding:0 .2rem}</style></head>
<body><h1>Gateway status</h1>
<p>Configuration generation <b>{{.Generation}}</b>, loaded {{date .LoadedAt}}. Reloads: {{.Reloads.OK}} applied, {{.Reloads.Failed}} refused.
{{if .Reloads.LastError}}<br>Last refused: <code>{{.Reloads.LastError}}</code>{{end}}</p>
<p>Identity cache: {{.Cache.Entries}} answers held, {{.Cache.Hits}} hits, {{.Cache.Misses}} misses.</p>
<h2>Perimeters</h2>
<table><tr><th>Name</th><th>Listen</th><th>Hostnames</th><th>Mode</th><th>Certificate</th><th>Upstreams</th></tr>
{{range .Perimeters}}<tr><td>{{.Name}}</td><td>{{.Listen}}{{if .Address}}<br><small>{{.Address}}</small>{{end}}</td>
<td>{{range .Hostnames}}{{.}}<br>{{else}}any{{end}}</td><td>{{.Mode}}, client certificate {{.ClientCert}}</td>
<td>{{with .Certificate}}{{.Subject}}<br><small>serial {{.Serial}}{{if .Auto}}, from the authority{{end}}</small><br>expires {{date .NotAfter}}{{end}}</td>
<td>{{range .Upstreams}}{{.URL}} {{if .Up}}<span class="up">up</span>{{else}}<span class="down">down</span> until {{date .DownUntil}}{{end}}<br>{{end}}</td></tr>
{{end}}</table>
<h2>Certificates</h2>
<table>{{with .Agent}}<tr><th>Agent (to the authority and https upstreams)</th><td>{{.Subject}}, serial {{.Serial}}</td><td>expires {{date .NotAfter}}</td></tr>{{end}}
{{with .Admin}}<tr><th>Admin listener</th><td>{{.Subject}}, serial {{.Serial}}</td><td>expires {{date .NotAfter}}</td></tr>{{end}}</table>
<p><a href="status.json">JSON</a> · <a href="metrics">metrics</a></p>
</body></html>
`))

func (g *Gateway) serveStatusHTML(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = statusTemplate.Execute(w, g.Status())
}
