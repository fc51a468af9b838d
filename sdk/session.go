package sdk

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// session is the signed cookie the redirect flow leaves: the serial that
// identified the person and when the session ends, HMAC-SHA256-signed.
type session struct {
	key  []byte
	name string
	ttl  time.Duration
}

func (s *session) sign(payload string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *session) cookie(serial string, now time.Time) *http.Cookie {
	payload := serial + "|" + strconv.FormatInt(now.Add(s.ttl).Unix(), 10)
	return &http.Cookie{
		Name: s.name, Value: payload + "|" + s.sign(payload), Path: "/",
		MaxAge: int(s.ttl / time.Second), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
}

func (s *session) clear() *http.Cookie {
	return &http.Cookie{Name: s.name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

// read returns the serial of a valid, unexpired session cookie, or "".
func (s *session) read(r *http.Request, now time.Time) string {
	c, err := r.Cookie(s.name)
	if err != nil {
		return ""
	}
	i := strings.LastIndexByte(c.Value, '|')
	if i < 0 {
		return ""
	}
	payload, mac := c.Value[:i], c.Value[i+1:]
	if !hmac.Equal([]byte(mac), []byte(s.sign(payload))) {
		return ""
	}
	serial, exp, ok := strings.Cut(payload, "|")
	if !ok {
		return ""
	}
	t, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.Unix() >= t {
		return ""
	}
	return serial
}
