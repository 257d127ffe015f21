// Package idgen makes opaque resource ids, secrets and event UUIDs from crypto/rand.
package idgen

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"strings"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// New returns a 26-character lowercase URL-safe id carrying 130 bits of randomness.
func New() string {
	var b [17]byte // 136 bits -> 28 chars; trimmed to 26 chars = 130 bits
	fill(b[:])
	return idEncoding.EncodeToString(b[:])[:26]
}

// Secret returns a 43-character URL-safe secret carrying 256 bits of randomness.
func Secret() string {
	var b [32]byte
	fill(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// UUID returns a random (version 4) UUID string.
func UUID() string {
	var b [16]byte
	fill(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Valid reports whether s looks like an id made by New (used to reject garbage early).
func Valid(s string) bool {
	if len(s) != 26 {
		return false
	}
	return strings.Trim(s, "0123456789abcdefghijklmnopqrstuv") == ""
}

func fill(b []byte) {
	// crypto/rand.Read never returns an error on supported platforms (Go 1.24+); it
	// crashes the program irrecoverably instead, which is what we want for key material.
	_, _ = rand.Read(b)
}
