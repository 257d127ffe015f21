package rawhook

import (
	"context"
	"strings"
	"testing"
)

func TestRunDeliversEveryBody(t *testing.T) {
	r, err := Run(context.Background(), Options{Endpoints: 3, PerEndpoint: 2, Deliveries: 300, BodyBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if r.Deliveries != 300 || r.Received != 300 {
		t.Fatalf("delivered %d, received %d distinct ids; want 300 and 300", r.Deliveries, r.Received)
	}
	if r.PerSecond() <= 0 || r.Elapsed <= 0 {
		t.Fatalf("no rate: %+v", r)
	}
}

func TestBodySizeAndSignature(t *testing.T) {
	b := body("evt-1", 1024)
	if len(b) != 1024 {
		t.Fatalf("body is %d bytes, want 1024", len(b))
	}
	m1, s1 := Sign("evt-1", 1700000000, b)
	m2, s2 := Sign("evt-1", 1700000000, append([]byte{}, b...))
	if m1 != m2 || s1 != s2 || !strings.HasPrefix(m1, "t=1700000000,v1=") || !strings.HasPrefix(s1, "v1,") {
		t.Fatalf("signatures %q %q / %q %q", m1, s1, m2, s2)
	}
	if m3, _ := Sign("evt-1", 1700000000, append(b[:len(b)-1:len(b)-1], 'y')); m3 == m1 {
		t.Fatal("a changed body has the same signature")
	}
}
