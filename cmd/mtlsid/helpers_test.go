package main

import (
	"io"
	"math/big"
	"net/http"
	"os"
	"regexp"
	"testing"
)

func fetch(t *testing.T, url, path string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func bigHex(dec string) string {
	n, _ := new(big.Int).SetString(dec, 10)
	return n.Text(16)
}

var fingerprintRE = regexp.MustCompile(`fingerprint \(SHA-256\): ([0-9A-F:]+)`)
