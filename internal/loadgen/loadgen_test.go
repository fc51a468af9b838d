package loadgen

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRequestsBound(t *testing.T) {
	res, err := Run(context.Background(), Config{Workers: 4, Requests: 100}, func(ctx context.Context, i int) (string, error) {
		if i%10 == 0 {
			return "", errors.New("boom")
		}
		return "ok", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 100 || res.Errors != 10 || res.Outcomes["ok"] != 90 || res.FirstErr == nil {
		t.Fatalf("result %+v", res)
	}
	var b strings.Builder
	res.Report(&b)
	if !strings.Contains(b.String(), "requests 100") {
		t.Errorf("report: %s", b.String())
	}
}

func TestRateAndDuration(t *testing.T) {
	res, err := Run(context.Background(), Config{Workers: 8, Rate: 200, Duration: 500 * time.Millisecond}, func(ctx context.Context, i int) (string, error) {
		return "ok", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 200/s for half a second: about 100, never more than the schedule allows.
	if res.Requests < 50 || res.Requests > 101 {
		t.Fatalf("%d requests at 200/s for 0.5 s", res.Requests)
	}
	if res.Percentile(100) <= 0 || res.Percentile(50) > res.Percentile(100) {
		t.Errorf("percentiles: p50 %v max %v", res.Percentile(50), res.Percentile(100))
	}
}

func TestNeedsABound(t *testing.T) {
	if _, err := Run(context.Background(), Config{}, nil); err == nil {
		t.Fatal("a run without bounds was accepted")
	}
}
