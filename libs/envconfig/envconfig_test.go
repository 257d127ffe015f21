package envconfig

import (
	"strings"
	"testing"
	"time"
)

func TestReader(t *testing.T) {
	r := FromMap(map[string]string{
		"A": "x", "N": "7", "D": "2s", "B": "true", "L": "a, b,,c",
		"BADN": "seven", "BADD": "-1s", "BADB": "maybe",
	})
	if got := r.String("A", "d"); got != "x" {
		t.Errorf("String = %q", got)
	}
	if got := r.String("MISSING", "d"); got != "d" {
		t.Errorf("default = %q", got)
	}
	if got := r.Int("N", 0); got != 7 {
		t.Errorf("Int = %d", got)
	}
	if got := r.Duration("D", 0); got != 2*time.Second {
		t.Errorf("Duration = %v", got)
	}
	if !r.Bool("B", false) {
		t.Error("Bool false")
	}
	if got := strings.Join(r.List("L", nil), "|"); got != "a|b|c" {
		t.Errorf("List = %q", got)
	}
	if r.Err() != nil {
		t.Fatalf("unexpected error %v", r.Err())
	}
	r.Int("BADN", 1)
	r.Duration("BADD", 0)
	r.Bool("BADB", false)
	err := r.Err()
	for _, n := range []string{"BADN", "BADD", "BADB"} {
		if err == nil || !strings.Contains(err.Error(), n) {
			t.Errorf("error %v does not name %s", err, n)
		}
	}
	if len(r.Names()) != 9 {
		t.Errorf("Names = %v", r.Names())
	}
}
