package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The pass-through routes choose an upstream by the server name of the
// client's ClientHello without ending TLS: the gateway reads the first
// handshake message from the TLS records (RFC 8446 §5.1, §4.1.2), finds
// the server_name extension (RFC 6066 §3), and replays every byte it read
// to the upstream.

const (
	recordHandshake    = 22
	handshakeHello     = 1
	maxRecordLen       = 1 << 14 // TLSPlaintext.length
	extServerName      = 0
	serverNameHostName = 0
	// DefaultMaxHello bounds the ClientHello of a pass-through route.
	// Hellos with post-quantum key shares are about 2 KiB.
	DefaultMaxHello = 16 << 10
)

// errClientHello wraps every reason the first bytes are not a usable
// ClientHello.
var errClientHello = errors.New("not a TLS ClientHello")

// errNoServerName is a valid ClientHello that names no server.
var errNoServerName = errors.New("the ClientHello names no server (no SNI)")

func helloErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errClientHello, fmt.Sprintf(format, args...))
}

// readClientHello reads from r the TLS records carrying the client's
// first handshake message, which must be a ClientHello of at most max
// bytes, and returns every byte it read (to replay to the upstream) and
// the server name, lower-cased. It reads no byte past the record that
// completes the ClientHello. A hello without a server name gives
// errNoServerName with the bytes read.
func readClientHello(r io.Reader, max int) (raw []byte, serverName string, err error) {
	var msg []byte
	want := -1 // length of the handshake message, once its header is read
	for want < 0 || len(msg) < want {
		var hdr [5]byte
		got, err := io.ReadFull(r, hdr[:])
		raw = append(raw, hdr[:got]...)
		if err != nil {
			return raw, "", fmt.Errorf("read TLS record header: %w", err)
		}
		if hdr[0] != recordHandshake || hdr[1] != 3 {
			return raw, "", helloErr("record type %d version %d.%d", hdr[0], hdr[1], hdr[2])
		}
		n := int(binary.BigEndian.Uint16(hdr[3:5]))
		if n == 0 || n > maxRecordLen {
			return raw, "", helloErr("record length %d", n)
		}
		if len(raw)+n > 2*max+5 {
			return raw, "", helloErr("more than %d bytes of records", 2*max)
		}
		start := len(raw)
		raw = append(raw, make([]byte, n)...)
		if got, err := io.ReadFull(r, raw[start:]); err != nil {
			return raw[:start+got], "", fmt.Errorf("read TLS record: %w", err)
		}
		msg = append(msg, raw[start:]...)
		if want < 0 && len(msg) >= 4 {
			if msg[0] != handshakeHello {
				return raw, "", helloErr("handshake message type %d", msg[0])
			}
			body := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
			if body > max {
				return raw, "", helloErr("ClientHello of %d bytes, more than %d", body, max)
			}
			want = 4 + body
		}
	}
	name, err := parseClientHello(msg[4:want])
	return raw, name, err
}

// parseClientHello returns the host name of a ClientHello's server_name
// extension, lower-cased and without a trailing dot. It refuses malformed
// hellos, repeated extensions, and names that are not host names.
func parseClientHello(b []byte) (string, error) {
	c := cursor(b)
	if _, ok := c.bytes(2 + 32); !ok { // legacy_version, random
		return "", helloErr("truncated before the session id")
	}
	if _, ok := c.vec8(); !ok { // legacy_session_id
		return "", helloErr("truncated session id")
	}
	if suites, ok := c.vec16(); !ok || len(suites) == 0 || len(suites)%2 != 0 {
		return "", helloErr("bad cipher suites")
	}
	if comp, ok := c.vec8(); !ok || len(comp) == 0 {
		return "", helloErr("bad compression methods")
	}
	if len(c) == 0 {
		return "", errNoServerName // no extensions at all (TLS 1.0 style)
	}
	exts, ok := c.vec16()
	if !ok || len(c) != 0 {
		return "", helloErr("bad extensions block")
	}
	seen := map[int]bool{}
	name := ""
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return "", helloErr("truncated extension")
		}
		if seen[typ] {
			return "", helloErr("extension %d repeated", typ)
		}
		seen[typ] = true
		if typ != extServerName {
			continue
		}
		var err error
		if name, err = parseServerName(data); err != nil {
			return "", err
		}
	}
	if name == "" {
		return "", errNoServerName
	}
	return name, nil
}

// parseServerName reads a ServerNameList and returns its host_name.
func parseServerName(data cursor) (string, error) {
	list, ok := data.vec16()
	if !ok || len(data) != 0 || len(list) == 0 {
		return "", helloErr("bad server_name extension")
	}
	name := ""
	for len(list) > 0 {
		typ, ok1 := list.u8()
		v, ok2 := list.vec16()
		if !ok1 || !ok2 {
			return "", helloErr("truncated server name")
		}
		if typ != serverNameHostName {
			continue
		}
		if name != "" {
			return "", helloErr("two host names")
		}
		n := strings.ToLower(strings.TrimSuffix(string(v), "."))
		if !validHostname(n) {
			return "", helloErr("server name %q is not a host name", v)
		}
		name = n
	}
	if name == "" {
		return "", errNoServerName
	}
	return name, nil
}

// validHostname accepts lower-case DNS names of letters, digits, "-" and
// "_" (used by internal names), so that a name is safe in logs.
func validHostname(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// cursor reads big-endian fields and length-prefixed vectors.
type cursor []byte

func (c *cursor) bytes(n int) ([]byte, bool) {
	if n < 0 || len(*c) < n {
		return nil, false
	}
	b := (*c)[:n]
	*c = (*c)[n:]
	return b, true
}

func (c *cursor) u8() (int, bool) {
	b, ok := c.bytes(1)
	if !ok {
		return 0, false
	}
	return int(b[0]), true
}

func (c *cursor) u16() (int, bool) {
	b, ok := c.bytes(2)
	if !ok {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(b)), true
}

func (c *cursor) vec8() (cursor, bool) {
	n, ok := c.u8()
	if !ok {
		return nil, false
	}
	b, ok := c.bytes(n)
	return cursor(b), ok
}

func (c *cursor) vec16() (cursor, bool) {
	n, ok := c.u16()
	if !ok {
		return nil, false
	}
	b, ok := c.bytes(n)
	return cursor(b), ok
}
