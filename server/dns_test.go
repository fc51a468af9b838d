package server_test

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// dnsServer is a real DNS server on loopback answering TXT queries from a
// map the test fills, for domain verification.
type dnsServer struct {
	addr string
	mu   sync.Mutex
	txt  map[string][]string
}

func startDNS(t testing.TB) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{addr: pc.LocalAddr().String(), txt: map[string][]string{}}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.answer)}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return d
}

func (d *dnsServer) setTXT(name, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt[strings.ToLower(dns.Fqdn(name))] = []string{value}
}

func (d *dnsServer) answer(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, question := range q.Question {
		vals, ok := d.txt[strings.ToLower(question.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
			continue
		}
		if question.Qtype == dns.TypeTXT {
			for _, v := range vals {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{v}})
			}
		}
	}
	_ = w.WriteMsg(m)
}
