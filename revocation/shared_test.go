package revocation

import (
	"bytes"
	"testing"
	"time"
)

// TestCRLShared: two publishers on one store are two nodes. What one
// makes, the other loads; a refresh that loses to a larger stored number
// serves the stored CRL; numbers never go down.
func TestCRLShared(t *testing.T) {
	p := newTestPKI(t)
	a, b := newTestCRL(t, p, nil), newTestCRL(t, p, nil)
	ctx := t.Context()
	if ok, err := b.Load(ctx); ok || err != nil {
		t.Fatalf("Load with nothing stored = %v, %v", ok, err)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Load(ctx); !ok || err != nil || !bytes.Equal(a.Current(), b.Current()) {
		t.Fatalf("Load after a's refresh = %v, %v; same CRL: %v", ok, err, bytes.Equal(a.Current(), b.Current()))
	}
	if ok, _ := b.Load(ctx); ok {
		t.Error("Load of the CRL already served reported a change")
	}

	serial := p.leaf.SerialNumber.String()
	p.store.revoke(serial, time.Now(), 1)
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.Lists(serial) || a.Lists(serial) {
		t.Fatalf("after b's refresh: b lists %v, a lists %v", b.Lists(serial), a.Lists(serial))
	}
	// a draws a number, but another node stored a larger one meanwhile.
	p.store.mu.Lock()
	newer := *p.store.crl
	newer.Number = 99
	p.store.crl = &newer
	p.store.mu.Unlock()
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Current(), newer.DER) || !a.Lists(serial) {
		t.Errorf("a does not serve the stored CRL 99 (lists the revoked: %v)", a.Lists(serial))
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Current(), newer.DER) {
		t.Error("after another lost refresh a no longer serves the stored CRL 99")
	}
}
