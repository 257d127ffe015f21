// Package envconfig reads SPACECAST_* settings, collecting every bad value into one error.
package envconfig

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Reader reads typed settings from a lookup function and remembers which names it read.
type Reader struct {
	lookup func(string) (string, bool)
	names  map[string]bool
	errs   []error
}

// New returns a Reader over lookup (usually os.LookupEnv).
func New(lookup func(string) (string, bool)) *Reader {
	return &Reader{lookup: lookup, names: map[string]bool{}}
}

// FromMap returns a Reader over a fixed map (tests, compose checks).
func FromMap(m map[string]string) *Reader {
	return New(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

func (r *Reader) get(name string) (string, bool) {
	r.names[name] = true
	v, ok := r.lookup(name)
	if !ok || strings.TrimSpace(v) == "" {
		return "", false
	}
	return strings.TrimSpace(v), true
}

func (r *Reader) bad(name, v, want string) {
	r.errs = append(r.errs, fmt.Errorf("%s=%q: %s", name, v, want))
}

// String returns the value of name or def.
func (r *Reader) String(name, def string) string {
	if v, ok := r.get(name); ok {
		return v
	}
	return def
}

// Int returns the integer value of name or def.
func (r *Reader) Int(name string, def int) int {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.bad(name, v, "want an integer")
		return def
	}
	return n
}

// Duration returns a Go duration ("5s", "1m") or def.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		r.bad(name, v, "want a non-negative duration such as 5s or 2m")
		return def
	}
	return d
}

// Bool returns a boolean (true/false/1/0) or def.
func (r *Reader) Bool(name string, def bool) bool {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.bad(name, v, "want true or false")
		return def
	}
	return b
}

// List returns a comma-separated list or def.
func (r *Reader) List(name string, def []string) []string {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Fail records a validation error for name (for checks a caller makes on a read value).
func (r *Reader) Fail(name, msg string) { r.errs = append(r.errs, fmt.Errorf("%s: %s", name, msg)) }

// Err returns every bad value found so far, or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// Names returns the sorted names read so far.
func (r *Reader) Names() []string {
	out := make([]string, 0, len(r.names))
	for n := range r.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
