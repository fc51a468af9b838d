package gateway

import (
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the gateway's Prometheus metrics, served on the admin
// listener's /metrics. Make one with NewMetrics before the middleware,
// so that its ObserveInquiry can be given to sdk.WithInquiryObserver, and
// pass it in Config.Metrics; it outlives reloads.
type Metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	inquiries      *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	connections    *prometheus.GaugeVec
	reloads        *prometheus.CounterVec
	fastRequests   prometheus.Counter
	gw             atomic.Pointer[Gateway]
}

// NewMetrics returns metrics in a registry of their own, with the Go
// runtime's and the process's.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtlsid_gateway_requests_total", Help: "HTTP requests by perimeter and decision (allowed, anonymous, exempt, forwarded, refused, unavailable, misdirected, redirected).",
		}, []string{"perimeter", "decision"}),
		inquiries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mtlsid_gateway_inquiry_duration_seconds", Help: "Latency of the identity inquiries to the authority (cache misses), by result.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtlsid_gateway_upstream_errors_total", Help: "Requests to an upstream that failed (no response), by perimeter and upstream.",
		}, []string{"perimeter", "upstream"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mtlsid_gateway_connections_active", Help: "Client connections open, by listener.",
		}, []string{"listener"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtlsid_gateway_reloads_total", Help: "Configuration reloads, by result (ok, failed).",
		}, []string{"result"}),
		fastRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mtlsid_gateway_fast_path_requests_total", Help: "HTTP/1.1 requests proxied on the fast path, without net/http (counted among the allowed ones too).",
		}),
	}
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("failed")
	m.reg.MustRegister(m.requests, m.inquiries, m.upstreamErrors, m.connections, m.reloads, m.fastRequests, stateCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics are registered; a program may add its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// ObserveInquiry records one inquiry to the authority; give it to
// sdk.WithInquiryObserver.
func (m *Metrics) ObserveInquiry(took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.inquiries.WithLabelValues(result).Observe(took.Seconds())
}

// attach makes the state metrics read g. One gateway per Metrics.
func (m *Metrics) attach(g *Gateway) { m.gw.Store(g) }

func (m *Metrics) connState(listener string) func(net.Conn, http.ConnState) {
	g := m.connections.WithLabelValues(listener)
	return func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			g.Inc()
		case http.StateClosed, http.StateHijacked:
			g.Dec()
		}
	}
}

// stateCollector reads the gateway's current state at each scrape: the
// configuration generation, the identity cache, certificate expiry dates
// and upstream health.
type stateCollector struct{ m *Metrics }

var (
	descGeneration  = prometheus.NewDesc("mtlsid_gateway_config_generation", "Generation of the configuration serving (1 at start, +1 per reload).", nil, nil)
	descCacheHits   = prometheus.NewDesc("mtlsid_gateway_identity_cache_hits_total", "Identity lookups answered from the cache.", nil, nil)
	descCacheMisses = prometheus.NewDesc("mtlsid_gateway_identity_cache_misses_total", "Identity lookups that asked the authority (or waited for an inquiry in flight).", nil, nil)
	descCacheSize   = prometheus.NewDesc("mtlsid_gateway_identity_cache_entries", "Identity answers held in the cache.", nil, nil)
	descCertExpiry  = prometheus.NewDesc("mtlsid_gateway_certificate_expiry_timestamp_seconds", "When a certificate the gateway presents expires (Unix time), by use.", []string{"certificate"}, nil)
	descUpstreamUp  = prometheus.NewDesc("mtlsid_gateway_upstream_up", "1 when the upstream is used, 0 while a failed connection marks it down.", []string{"perimeter", "upstream"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descGeneration, descCacheHits, descCacheMisses, descCacheSize, descCertExpiry, descUpstreamUp} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.m.gw.Load()
	if g == nil {
		return
	}
	st := g.cur.Load()
	ch <- prometheus.MustNewConstMetric(descGeneration, prometheus.GaugeValue, float64(st.gen))
	cs := st.mw.CacheStats()
	ch <- prometheus.MustNewConstMetric(descCacheHits, prometheus.CounterValue, float64(cs.Hits+g.retiredHits.Load()))
	ch <- prometheus.MustNewConstMetric(descCacheMisses, prometheus.CounterValue, float64(cs.Misses+g.retiredMisses.Load()))
	ch <- prometheus.MustNewConstMetric(descCacheSize, prometheus.GaugeValue, float64(cs.Size))
	now := time.Now()
	seen := map[string]bool{} // default perimeter names may repeat across ports
	for _, gr := range st.groups {
		for _, p := range gr.perimeters {
			if seen[p.cfg.Name] {
				continue
			}
			seen[p.cfg.Name] = true
			if leaf := p.cert.leaf(); leaf != nil {
				ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()), "perimeter "+p.cfg.Name)
			}
			for _, b := range p.up.backends {
				up := 1.0
				if b.down(now) {
					up = 0
				}
				ch <- prometheus.MustNewConstMetric(descUpstreamUp, prometheus.GaugeValue, up, p.cfg.Name, b.raw)
			}
		}
	}
	if st.admin != nil {
		if leaf := st.admin.cert.leaf(); leaf != nil {
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()), "admin")
		}
	}
	if st.agent != nil {
		if leaf := st.agent.Leaf(); leaf != nil {
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()), "agent")
		}
	}
}
