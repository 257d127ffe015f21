package ssrf

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCheck(t *testing.T) {
	g, err := New([]string{"127.0.0.0/8", "fd12::1"})
	if err != nil {
		t.Fatal(err)
	}
	strict, _ := New(nil)
	tests := []struct {
		ip                string
		strict, withAllow bool // refused?
	}{
		{"127.0.0.1", true, false},
		{"10.0.0.1", true, true},
		{"172.16.5.4", true, true},
		{"192.168.1.1", true, true},
		{"169.254.169.254", true, true},
		{"100.64.0.1", true, true},
		{"0.0.0.0", true, true},
		{"224.0.0.1", true, true},
		{"::1", true, true},
		{"::ffff:127.0.0.1", true, false},
		{"::ffff:10.0.0.1", true, true},
		{"fe80::1", true, true},
		{"fd00:ec2::254", true, true},
		{"fd12::1", true, false},
		{"ff02::1", true, true},
		{"93.184.216.34", false, false},
		{"2606:2800:220:1::1", false, false},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got := errors.Is(strict.Check(ip), ErrRefused); got != tt.strict {
			t.Errorf("strict %s refused=%v, want %v", tt.ip, got, tt.strict)
		}
		if got := errors.Is(g.Check(ip), ErrRefused); got != tt.withAllow {
			t.Errorf("allow %s refused=%v, want %v", tt.ip, got, tt.withAllow)
		}
	}
	if _, err := New([]string{"not-a-cidr"}); err == nil {
		t.Fatal("bad allowlist accepted")
	}
}
