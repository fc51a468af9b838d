package mtlsid_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

func TestParseSerial(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"255", "255", true},
		{"0xff", "255", true},
		{"0XFF", "255", true},
		{" 42 ", "42", true},
		{"0", "", false},
		{"-1", "", false},
		{"0x", "", false},
		{"12abc", "", false},
		{"", "", false},
		{"0x" + "ff" + "0000000000000000000000000000000000000000", "", false}, // 21 octets
	} {
		got, err := mtlsid.NormalizeSerial(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("NormalizeSerial(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
			t.Errorf("NormalizeSerial(%q): kind %s", tc.in, mtlsid.ErrorKind(err))
		}
	}
	if got := mtlsid.HexSerial("255"); got != "0xff" {
		t.Errorf("HexSerial = %s", got)
	}
}

func TestRenewalPoint(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, want := mtlsid.RenewalPoint(nb, nb.Add(300*time.Hour)), nb.Add(200*time.Hour); !got.Equal(want) {
		t.Errorf("RenewalPoint = %v, want %v", got, want)
	}
	// Lifetimes long enough to saturate time.Duration must not wrap.
	far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	c := mtlsid.Certificate{NotBefore: nb, NotAfter: far}
	if c.RenewalDue(nb.Add(time.Hour)) {
		t.Error("a certificate valid until 9999 is due for renewal an hour in")
	}
}

func TestCertificateStatus(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := mtlsid.Certificate{NotBefore: nb, NotAfter: nb.Add(time.Hour)}
	for _, tc := range []struct {
		at   time.Time
		want mtlsid.CertStatus
	}{
		{nb.Add(-time.Second), mtlsid.StatusPending},
		{nb, mtlsid.StatusActive},
		{nb.Add(time.Hour), mtlsid.StatusActive},
		{nb.Add(time.Hour + time.Second), mtlsid.StatusExpired},
	} {
		if got := c.Status(tc.at); got != tc.want {
			t.Errorf("Status(%v) = %s, want %s", tc.at, got, tc.want)
		}
	}
	c.RevokedAt = nb.Add(time.Minute)
	if got := c.Status(nb.Add(2 * time.Minute)); got != mtlsid.StatusRevoked {
		t.Errorf("revoked: %s", got)
	}
	if got := c.Status(nb.Add(2 * time.Hour)); got != mtlsid.StatusRevoked {
		t.Errorf("revoked and expired: %s", got)
	}
}

func chain(n int) []mtlsid.AuditEntry {
	var out []mtlsid.AuditEntry
	var prev *mtlsid.AuditEntry
	for i := 1; i <= n; i++ {
		e := mtlsid.AuditEntry{Seq: int64(i), AuditEvent: mtlsid.AuditEvent{Time: time.Unix(int64(i), 0), Type: "t", Actor: "a", Subject: "s", Detail: "d"}}.Chain(prev)
		out = append(out, e)
		prev = &out[len(out)-1]
	}
	return out
}

func verify(entries []mtlsid.AuditEntry) error {
	var v mtlsid.AuditVerifier
	for _, e := range entries {
		if err := v.Next(e); err != nil {
			return err
		}
	}
	return nil
}

func TestAuditChain(t *testing.T) {
	if err := verify(chain(5)); err != nil {
		t.Fatalf("intact chain: %v", err)
	}
	tamper := map[string]func(es []mtlsid.AuditEntry) []mtlsid.AuditEntry{
		"changed detail": func(es []mtlsid.AuditEntry) []mtlsid.AuditEntry { es[2].Detail = "x"; return es },
		"changed time": func(es []mtlsid.AuditEntry) []mtlsid.AuditEntry {
			es[2].Time = es[2].Time.Add(time.Microsecond)
			return es
		},
		"removed entry": func(es []mtlsid.AuditEntry) []mtlsid.AuditEntry { return append(es[:2], es[3:]...) },
		"rehashed entry": func(es []mtlsid.AuditEntry) []mtlsid.AuditEntry {
			es[2].Detail = "x"
			es[2].Hash = es[2].ComputeHash(es[2].PrevHash)
			return es
		},
		"swapped entries": func(es []mtlsid.AuditEntry) []mtlsid.AuditEntry { es[2], es[3] = es[3], es[2]; return es },
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			err := verify(f(chain(5)))
			var ce *mtlsid.AuditChainError
			if !errors.As(err, &ce) || ce.Seq < 3 || ce.Seq > 4 {
				t.Fatalf("tampering not reported at entry 3 or 4: %v", err)
			}
		})
	}
}

func TestErrorKinds(t *testing.T) {
	wrapped := errors.Join(errors.New("context"), mtlsid.ErrTokenUsed)
	if mtlsid.ErrorKind(wrapped) != mtlsid.KindUsed || !errors.Is(wrapped, mtlsid.ErrTokenUsed) {
		t.Errorf("wrapped sentinel lost its kind")
	}
	if mtlsid.ErrorKind(errors.New("boom")) != mtlsid.KindInternal || mtlsid.ErrorMessage(errors.New("secret cause")) != "internal error" {
		t.Errorf("plain errors must be internal and say nothing of their cause")
	}
}
