package domainverify

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// testDNS is a real authoritative DNS server on loopback, UDP and TCP on the
// same port, answering from maps the test fills in.
type testDNS struct {
	addr       string
	queries    atomic.Int64
	tcpQueries atomic.Int64

	mu       sync.Mutex
	txt      map[string][][]string // fqdn -> records -> character-strings
	a        map[string]string     // fqdn -> IPv4
	servfail map[string]bool       // fqdn -> answer SERVFAIL
	truncate map[string]bool       // fqdn -> truncate UDP answers (forces TCP)
}

func startDNS(t *testing.T) *testDNS {
	t.Helper()
	s := &testDNS{
		txt:      map[string][][]string{},
		a:        map[string]string{},
		servfail: map[string]bool{},
		truncate: map[string]bool{},
	}
	pc, ln := listenUDPAndTCP(t)
	s.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)},
		{Listener: ln, Handler: dns.HandlerFunc(s.serve)},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return s
}

// listenUDPAndTCP binds a UDP and a TCP socket on the same loopback port.
func listenUDPAndTCP(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return nil, nil
}

func (s *testDNS) setTXT(name string, records ...[]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txt[dns.Fqdn(name)] = records
}

func (s *testDNS) setA(name, ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a[dns.Fqdn(name)] = ip
}

func (s *testDNS) setServfail(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[dns.Fqdn(name)] = true
}

func (s *testDNS) setTruncate(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate[dns.Fqdn(name)] = true
}

func (s *testDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	if !udp {
		s.tcpQueries.Add(1)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	txt, hasTXT := s.txt[name]
	ip, hasA := s.a[name]
	switch {
	case s.servfail[name]:
		m.Rcode = dns.RcodeServerFailure
	case udp && s.truncate[name]:
		m.Truncated = true
	case !hasTXT && !hasA:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeTXT:
		for _, r := range txt {
			hdr.Rrtype = dns.TypeTXT
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: r})
		}
	case q.Qtype == dns.TypeA && hasA:
		hdr.Rrtype = dns.TypeA
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP(ip)})
	}
	_ = w.WriteMsg(m)
}
