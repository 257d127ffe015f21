package idgen

import (
	"regexp"
	"testing"
)

func TestFormats(t *testing.T) {
	tests := []struct {
		name string
		gen  func() string
		re   string
	}{
		{"id", New, `^[0-9a-v]{26}$`},
		{"secret", Secret, `^[A-Za-z0-9_-]{43}$`},
		{"uuid", UUID, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re := regexp.MustCompile(tt.re)
			seen := map[string]bool{}
			for i := 0; i < 1000; i++ {
				v := tt.gen()
				if !re.MatchString(v) {
					t.Fatalf("%q does not match %s", v, tt.re)
				}
				if seen[v] {
					t.Fatalf("duplicate %q", v)
				}
				seen[v] = true
			}
		})
	}
	if !Valid(New()) || Valid("short") || Valid("ZZZZZZZZZZZZZZZZZZZZZZZZZZ") {
		t.Fatal("Valid misjudges ids")
	}
}
