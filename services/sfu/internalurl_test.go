package sfu_test

import (
	"os"
	"testing"

	"github.com/spacecast/spacecast/services/sfu"
)

func TestDefaultInternalURL(t *testing.T) {
	h, err := os.Hostname()
	if err != nil {
		t.Skip("no hostname")
	}
	for _, tc := range []struct{ addr, want string }{
		{":8080", "ws://" + h + ":8080"},
		{"0.0.0.0:9000", "ws://" + h + ":9000"},
		{"[::]:9000", "ws://" + h + ":9000"},
		{"10.0.0.5:8080", "ws://10.0.0.5:8080"},
		{"[fd00::1]:8080", "ws://[fd00::1]:8080"},
		{"sfu-1.internal:8080", "ws://sfu-1.internal:8080"},
		{"bad", ""},
	} {
		if got := sfu.DefaultInternalURL(tc.addr); got != tc.want {
			t.Errorf("DefaultInternalURL(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
