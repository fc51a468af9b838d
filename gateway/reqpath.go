package gateway

import (
	"net/url"
	"strings"
)

// rulePath is the path a request's rules are chosen by, and false for a
// path the gateway refuses to forward.
//
// The upstream decides what a path means, and upstreams differ: some
// resolve "/public/../admin" to /admin, some merge "//admin" into /admin,
// some decode "%2F" into a slash after routing. A gateway that chose the
// rule by one reading while the upstream served another would let a
// request past the rule of the page it gets. So a path with dot
// segments, backslashes or encoded slashes (which no browser sends for a
// link it resolved) is refused, and runs of slashes are merged before the
// rules are matched, so that "//admin" gets the rule of "/admin" whether
// or not the upstream merges them too.
func rulePath(u *url.URL) (string, bool) {
	p := u.Path
	if !strings.HasPrefix(p, "/") { // "*" (OPTIONS *) or empty: the "/" rule
		return p, !strings.ContainsRune(p, '\\')
	}
	if raw := u.RawPath; raw != "" && strings.Contains(raw, "%") {
		l := strings.ToLower(raw)
		if strings.Contains(l, "%2f") || strings.Contains(l, "%5c") {
			return "", false
		}
	}
	if strings.ContainsRune(p, '\\') {
		return "", false
	}
	single := !strings.Contains(p, "//")
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return "", false
		}
	}
	if single {
		return p, true
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String(), true
}
