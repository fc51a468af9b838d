package gateway

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestProxyHeader(t *testing.T) {
	// The example layout of the specification, byte by byte.
	want4 := []byte("\r\n\r\n\x00\r\nQUIT\n" + "\x21\x11\x00\x0c" +
		"\xc0\x00\x02\x01" + "\xc6\x33\x64\x02" + "\xc3\x50" + "\x01\xbb")
	if got := appendProxyHeader(nil, mustAddrPort("192.0.2.1:50000"), mustAddrPort("198.51.100.2:443")); !bytes.Equal(got, want4) {
		t.Errorf("IPv4 header\n got %q\nwant %q", got, want4)
	}
	for _, tc := range []struct {
		name           string
		src, dst       string
		wantSrc, wantD string
		size           int
	}{
		{"ipv4", "127.0.0.2:40000", "127.0.0.1:8443", "127.0.0.2:40000", "127.0.0.1:8443", 28},
		{"ipv6", "[2001:db8::1]:1", "[::1]:443", "[2001:db8::1]:1", "[::1]:443", 52},
		{"mapped ipv4 counts as ipv4", "[::ffff:10.0.0.1]:9", "10.0.0.2:443", "10.0.0.1:9", "10.0.0.2:443", 28},
		{"mixed families go as ipv6", "10.0.0.1:9", "[2001:db8::2]:443", "[::ffff:10.0.0.1]:9", "[2001:db8::2]:443", 52},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendProxyHeader([]byte("x"), mustAddrPort(tc.src), mustAddrPort(tc.dst))[1:]
			if len(b) != tc.size {
				t.Errorf("%d bytes, want %d", len(b), tc.size)
			}
			h, err := parseProxyHeader(append(b, "rest"...))
			if err != nil {
				t.Fatal(err)
			}
			if h.Local || h.Src != mustAddrPort(tc.wantSrc) || h.Dst != mustAddrPort(tc.wantD) || h.Len != len(b) {
				t.Errorf("parsed %+v", h)
			}
		})
	}
	if *updateSeeds {
		v4, v6 := []byte{192, 0, 2, 1}, netip.MustParseAddr("2001:db8::1").AsSlice()
		ok6 := appendProxyHeader(nil, mustAddrPort("[2001:db8::1]:1"), mustAddrPort("[::1]:443"))
		writeSeedArgs(t, "FuzzProxyHeader", map[string][]any{
			"ipv4":      {v4, []byte{127, 0, 0, 1}, uint16(50000), uint16(443), want4},
			"ipv6":      {v6, v6, uint16(1), uint16(65535), ok6},
			"mixed":     {v4, v6, uint16(0), uint16(443), ok6[:20]},
			"tlv":       {v4, v4, uint16(1), uint16(2), append(append([]byte{}, want4...), 0x04, 0, 2, 'o', 'k')},
			"local":     {[]byte{}, []byte{}, uint16(0), uint16(0), appendProxyHeader(nil, netip.AddrPort{}, netip.AddrPort{})},
			"signature": {[]byte{}, []byte{}, uint16(0), uint16(0), []byte(proxySig)},
		})
	}
	local := appendProxyHeader(nil, netip.AddrPort{}, mustAddrPort("127.0.0.1:1"))
	if h, err := parseProxyHeader(local); err != nil || !h.Local || h.Len != 16 {
		t.Errorf("LOCAL: %+v %v", h, err)
	}
	withTLV := append(append([]byte{}, want4...), 0x04, 0, 2, 'o', 'k') // a NOOP TLV
	withTLV[15] += 5
	if h, err := parseProxyHeader(withTLV); err != nil || h.Len != len(withTLV) || h.Src != mustAddrPort("192.0.2.1:50000") {
		t.Errorf("with TLV: %+v %v", h, err)
	}
	for name, b := range map[string][]byte{
		"short":       want4[:10],
		"signature":   append([]byte("\r\n\r\n\x00\r\nQUIT!"), want4[12:]...),
		"version 1":   append(append([]byte{}, want4[:12]...), append([]byte{0x11}, want4[13:]...)...),
		"udp":         append(append([]byte{}, want4[:13]...), append([]byte{0x12}, want4[14:]...)...),
		"truncated":   want4[:20],
		"bad tlv":     append([]byte{}, withTLV[:len(withTLV)-1]...),
		"short addrs": append(append([]byte{}, want4[:14]...), 0, 4, 1, 2, 3, 4),
	} {
		if name == "bad tlv" {
			b[15]--
		}
		if _, err := parseProxyHeader(b); !errors.Is(err, errProxyHeader) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzProxyHeader: what appendProxyHeader writes, parseProxyHeader reads
// back; and parseProxyHeader never panics nor claims more bytes than it
// was given.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, []byte{127, 0, 0, 1}, uint16(5000), uint16(443), []byte{})
	f.Add(make([]byte, 16), []byte{1, 2, 3, 4}, uint16(1), uint16(2), appendProxyHeader(nil, mustAddrPort("[::1]:1"), mustAddrPort("[::1]:2")))
	f.Fuzz(func(t *testing.T, src, dst []byte, sport, dport uint16, raw []byte) {
		if h, err := parseProxyHeader(raw); err == nil && (h.Len > len(raw) || h.Len < proxyHeadLen) {
			t.Fatalf("header of %d bytes from %d", h.Len, len(raw))
		}
		sa, ok1 := netip.AddrFromSlice(src)
		da, ok2 := netip.AddrFromSlice(dst)
		if !ok1 || !ok2 {
			return
		}
		s, d := netip.AddrPortFrom(sa, sport), netip.AddrPortFrom(da, dport)
		b := appendProxyHeader(nil, s, d)
		h, err := parseProxyHeader(b)
		if err != nil || h.Len != len(b) || h.Local {
			t.Fatalf("%v %v: %+v %v", s, d, h, err)
		}
		if h.Src.Addr().Unmap() != sa.Unmap() || h.Dst.Addr().Unmap() != da.Unmap() || h.Src.Port() != sport || h.Dst.Port() != dport {
			t.Fatalf("%v %v read back as %v %v", s, d, h.Src, h.Dst)
		}
	})
}
