package spacejwt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spacecast/spacecast/libs/spacejwt"
)

type source struct {
	keys  []spacejwt.PublicKey
	calls atomic.Int32
}

func (s *source) PublicKeys(context.Context) ([]spacejwt.PublicKey, error) {
	s.calls.Add(1)
	return s.keys, nil
}

func TestVerify(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	src := &source{keys: []spacejwt.PublicKey{{ID: "k1", EnvironmentID: "env1", Key: &key.PublicKey}}}
	v, err := spacejwt.NewVerifier(src, spacejwt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"aud": "rt", "sub": "space1", "exp": now.Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(m jwt.SigningMethod, k any, kid string, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(m, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := sign(jwt.SigningMethodRS256, key, "k1", claims(nil))
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"rt","sub":"space2","exp":9999999999}`)) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`)) + "." + parts[1] + "."

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"expired", sign(jwt.SigningMethodRS256, key, "k1", claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })), spacejwt.ErrExpired},
		{"not yet valid", sign(jwt.SigningMethodRS256, key, "k1", claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), spacejwt.ErrNotYetValid},
		{"wrong audience", sign(jwt.SigningMethodRS256, key, "k1", claims(func(c jwt.MapClaims) { c["aud"] = "v" })), spacejwt.ErrAudience},
		{"no exp", sign(jwt.SigningMethodRS256, key, "k1", claims(func(c jwt.MapClaims) { delete(c, "exp") })), spacejwt.ErrMissingExpiry},
		{"unknown kid", sign(jwt.SigningMethodRS256, key, "nope", claims(nil)), spacejwt.ErrUnknownKey},
		{"other key", sign(jwt.SigningMethodRS256, other, "k1", claims(nil)), spacejwt.ErrSignature},
		{"HS256 with the public key as secret", sign(jwt.SigningMethodHS256, pubDER, "k1", claims(nil)), spacejwt.ErrAlgorithm},
		{"ES256", sign(jwt.SigningMethodES256, ec, "k1", claims(nil)), spacejwt.ErrAlgorithm},
		{"alg none", none, spacejwt.ErrAlgorithm},
		{"tampered payload", tampered, spacejwt.ErrSignature},
		{"garbage", "not.a.jwt", spacejwt.ErrMalformed},
		{"empty", "", spacejwt.ErrMalformed},
		{"bad role", sign(jwt.SigningMethodRS256, key, "k1", claims(func(c jwt.MapClaims) { c["role"] = "admin" })), spacejwt.ErrRole},
		{"no sub", sign(jwt.SigningMethodRS256, key, "k1", claims(func(c jwt.MapClaims) { delete(c, "sub") })), spacejwt.ErrSubject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := v.Verify(context.Background(), tt.token, spacejwt.AudienceRT); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}

	c, err := v.Verify(context.Background(), valid, spacejwt.AudienceRT)
	if err != nil || c.Role != spacejwt.RolePublisher || c.EnvironmentID != "env1" || c.Subject != "space1" {
		t.Fatalf("valid token: %+v, %v", c, err)
	}
	// kid in the claims works as well as in the header; Sign takes base64 of PEM as the API returns it.
	kidInClaims := sign(jwt.SigningMethodRS256, key, "", claims(func(c jwt.MapClaims) { c["kid"] = "k1"; c["role"] = "subscriber" }))
	if c, err := v.Verify(context.Background(), kidInClaims, spacejwt.AudienceRT); err != nil || c.Role != spacejwt.RoleSubscriber {
		t.Fatalf("kid in claims: %+v, %v", c, err)
	}
	tok, err := spacejwt.Sign([]byte(base64.StdEncoding.EncodeToString(privPEM)), "k1", spacejwt.SignClaims{Audience: spacejwt.AudiencePlayback, Subject: "pb1"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(context.Background(), tok, spacejwt.AudiencePlayback); err != nil || c.Subject != "pb1" {
		t.Fatalf("playback token: %+v, %v", c, err)
	}
}

func TestUnknownKidRefreshIsRateLimited(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	src := &source{}
	clock := time.Now()
	v, _ := spacejwt.NewVerifier(src, spacejwt.Options{Now: func() time.Time { return clock }, MinUnknownWait: time.Second, RefreshEvery: time.Hour})
	tok := func(kid string) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"aud": "rt", "sub": "s", "exp": clock.Add(time.Hour).Unix(), "kid": kid}).SignedString(key)
		return s
	}
	for i := 0; i < 50; i++ {
		_, _ = v.Verify(context.Background(), tok("flood"), spacejwt.AudienceRT)
	}
	if n := src.calls.Load(); n > 2 {
		t.Fatalf("a flood of unknown kids made %d key-source calls", n)
	}
	// A key created now is found on the next refresh after the wait.
	src.keys = []spacejwt.PublicKey{{ID: "new", Key: &key.PublicKey}}
	clock = clock.Add(1100 * time.Millisecond)
	if _, err := v.Verify(context.Background(), tok("new"), spacejwt.AudienceRT); err != nil {
		t.Fatalf("new key not picked up: %v", err)
	}
	// A deleted key stops verifying after the periodic refresh.
	src.keys = nil
	clock = clock.Add(2 * time.Hour)
	if _, err := v.Verify(context.Background(), tok("new"), spacejwt.AudienceRT); !errors.Is(err, spacejwt.ErrUnknownKey) {
		t.Fatalf("deleted key still verifies: %v", err)
	}
}
