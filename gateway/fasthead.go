package gateway

import (
	"bytes"
	"strings"
)

// headInfo is what the fast path needs of a request head; its slices
// point into the head.
type headInfo struct {
	method string // "GET" or "HEAD"
	path   []byte // the target up to "?"
	host   []byte
	close  bool // Connection: close
}

// parseHead parses a request head (through its empty line) for the fast
// path and appends to out the request line and the header lines the
// upstream may see: not the hop-by-hop ones, not X-Forwarded-For/-Host/
// -Proto (the fast path writes its own), not those of strip. It reports
// false for anything it does not take, which net/http then serves: a
// method other than GET and HEAD, a version other than HTTP/1.1, a target
// not in origin form or whose path holds "%", "\", "//" or "/." (the
// rules' reading of it is net/http's, reqpath.go), a header announcing a
// body, an upgrade or an expectation, a Connection option other than
// close and keep-alive, a second Host or none, and any byte the grammar
// does not allow (RFC 9112: token names, no folding, no bare CR or LF,
// no control characters in values).
func parseHead(head []byte, strip stripSet, out []byte) (hi headInfo, _ []byte, ok bool) {
	i := bytes.Index(head, crlf)
	if i < 0 {
		return hi, out, false
	}
	line, rest := head[:i], head[i+2:]
	var target []byte
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		hi.method, target = "GET", line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		hi.method, target = "HEAD", line[5:]
	default:
		return hi, out, false
	}
	sp := bytes.IndexByte(target, ' ')
	if sp < 0 || string(target[sp+1:]) != "HTTP/1.1" {
		return hi, out, false
	}
	target = target[:sp]
	if !validTarget(target) {
		return hi, out, false
	}
	hi.path = target
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		hi.path = target[:q]
	}
	out = append(out, line...)
	out = append(out, crlf...)
	for {
		i := bytes.Index(rest, crlf)
		if i < 0 {
			return hi, out, false
		}
		line, rest = rest[:i], rest[i+2:]
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || colon > 64 {
			return hi, out, false
		}
		var fold [64]byte
		for j, b := range line[:colon] {
			if !isTokenChar(b) {
				return hi, out, false
			}
			switch {
			case 'A' <= b && b <= 'Z':
				b += 'a' - 'A'
			case b == '_':
				b = '-'
			}
			fold[j] = b
		}
		name := fold[:colon]
		value := bytes.Trim(line[colon+1:], " \t")
		for _, b := range value {
			if b < ' ' && b != '\t' || b == 0x7f {
				return hi, out, false
			}
		}
		switch string(name) {
		case "host":
			if hi.host != nil || !validHost(value) {
				return hi, out, false
			}
			hi.host = value
		case "content-length", "transfer-encoding", "upgrade", "expect", "te", "trailer", "http2-settings":
			return hi, out, false
		case "connection":
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.Trim(tok, " \t")
				switch {
				case bytes.EqualFold(tok, []byte("close")):
					hi.close = true
				case bytes.EqualFold(tok, []byte("keep-alive")), len(tok) == 0:
				default:
					return hi, out, false
				}
			}
			continue
		case "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
			"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto":
			continue
		}
		if strip[string(name)] {
			continue
		}
		out = append(out, line...)
		out = append(out, crlf...)
	}
	if hi.host == nil || len(rest) != 0 {
		return hi, out, false
	}
	return hi, out, true
}

var crlf = []byte("\r\n")

// validTarget reports whether t is an origin-form target whose path the
// fast path reads as net/http and the upstream do: "/" then path
// characters without "%" or "\", no "//" and no "/.", then an optional
// query of visible characters.
func validTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	inQuery := false
	for i, b := range t {
		if inQuery {
			if b <= ' ' || b >= 0x7f || b == '#' {
				return false
			}
			continue
		}
		switch {
		case b == '?':
			inQuery = true
		case b == '/':
			if i+1 < len(t) && (t[i+1] == '/' || t[i+1] == '.') {
				return false
			}
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHost allows a host name or address with an optional port.
func validHost(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	for _, b := range h {
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case b == '.' || b == '-' || b == ':' || b == '[' || b == ']':
		default:
			return false
		}
	}
	return true
}

// isTokenChar reports whether b may appear in a header name (RFC 9110
// §5.6.2).
func isTokenChar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}
