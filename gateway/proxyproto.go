package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// PROXY protocol version 2 (haproxy.org/download/2.9/doc/proxy-protocol.txt):
// a binary header the gateway writes before the relayed bytes of a
// pass-through route, so that the upstream learns the client's address.

// proxySig is the 12-byte signature every v2 header starts with.
const proxySig = "\r\n\r\n\x00\r\nQUIT\n"

const (
	proxyV2Local = 0x20 // version 2, command LOCAL
	proxyV2Proxy = 0x21 // version 2, command PROXY

	proxyUnspec   = 0x00
	proxyTCP4     = 0x11 // AF_INET, STREAM
	proxyTCP6     = 0x21 // AF_INET6, STREAM
	proxyHeadLen  = 16   // signature, version and command, family, length
	proxyAddrLen4 = 12
	proxyAddrLen6 = 36
)

// errProxyHeader wraps every reason a PROXY v2 header is refused.
var errProxyHeader = errors.New("gateway: bad PROXY v2 header")

// appendProxyHeader appends to b a PROXY v2 header for a TCP connection
// from src to dst (the address the client reached). IPv4-mapped IPv6
// addresses count as IPv4; when one side is IPv4 and the other IPv6, both
// are sent as IPv6 (the IPv4 one mapped). Invalid addresses give a LOCAL
// header, which tells the receiver to use the connection's own addresses.
func appendProxyHeader(b []byte, src, dst netip.AddrPort) []byte {
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	b = append(b, proxySig...)
	if !sa.IsValid() || !da.IsValid() {
		return append(b, proxyV2Local, proxyUnspec, 0, 0)
	}
	if sa.Is4() && da.Is4() {
		b = append(b, proxyV2Proxy, proxyTCP4, 0, proxyAddrLen4)
		s4, d4 := sa.As4(), da.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, proxyV2Proxy, proxyTCP6, 0, proxyAddrLen6)
		s16, d16 := sa.As16(), da.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// proxyHeader is a parsed PROXY v2 header.
type proxyHeader struct {
	// Local is true for the LOCAL command (health checks of a proxy):
	// Src and Dst are then zero.
	Local    bool
	Src, Dst netip.AddrPort
	// Len is the length of the whole header, TLVs included.
	Len int
}

// parseProxyHeader reads the PROXY v2 header at the start of b. It reads
// TCP over IPv4 and IPv6 and skips TLVs; UNSPEC gives zero addresses
// (use the connection's own), and other families (UDP, UNIX) are refused. It checks the test's and the
// fuzzer's view of what appendProxyHeader writes, and is ready for
// listeners that accept the header from a load balancer.
func parseProxyHeader(b []byte) (proxyHeader, error) {
	if len(b) < proxyHeadLen {
		return proxyHeader{}, fmt.Errorf("%w: %d bytes, want at least %d", errProxyHeader, len(b), proxyHeadLen)
	}
	if string(b[:len(proxySig)]) != proxySig {
		return proxyHeader{}, fmt.Errorf("%w: no signature", errProxyHeader)
	}
	verCmd, fam := b[12], b[13]
	n := int(binary.BigEndian.Uint16(b[14:16]))
	if len(b) < proxyHeadLen+n {
		return proxyHeader{}, fmt.Errorf("%w: %d address bytes announced, %d present", errProxyHeader, n, len(b)-proxyHeadLen)
	}
	h := proxyHeader{Len: proxyHeadLen + n}
	body := b[proxyHeadLen:h.Len]
	switch verCmd {
	case proxyV2Local:
		h.Local = true
		return h, nil // the addresses, if any, are ignored
	case proxyV2Proxy:
	default:
		return proxyHeader{}, fmt.Errorf("%w: version and command 0x%02x", errProxyHeader, verCmd)
	}
	var size int
	switch fam {
	case proxyUnspec:
		return h, nil
	case proxyTCP4:
		size = 4
	case proxyTCP6:
		size = 16
	default:
		return proxyHeader{}, fmt.Errorf("%w: family and protocol 0x%02x", errProxyHeader, fam)
	}
	if len(body) < 2*size+4 {
		return proxyHeader{}, fmt.Errorf("%w: %d address bytes for family 0x%02x", errProxyHeader, len(body), fam)
	}
	src, _ := netip.AddrFromSlice(body[:size])
	dst, _ := netip.AddrFromSlice(body[size : 2*size])
	ports := body[2*size:]
	h.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(ports[0:2]))
	h.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(ports[2:4]))
	if err := checkTLVs(body[2*size+4:]); err != nil {
		return proxyHeader{}, err
	}
	return h, nil
}

// checkTLVs checks that the rest of a header is a sequence of whole
// type-length-value records.
func checkTLVs(b []byte) error {
	for len(b) > 0 {
		if len(b) < 3 {
			return fmt.Errorf("%w: truncated TLV", errProxyHeader)
		}
		n := 3 + int(binary.BigEndian.Uint16(b[1:3]))
		if len(b) < n {
			return fmt.Errorf("%w: TLV 0x%02x overruns the header", errProxyHeader, b[0])
		}
		b = b[n:]
	}
	return nil
}
