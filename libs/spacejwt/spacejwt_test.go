package spacejwt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/spacejwt"
)

// RSA key generation is slow; the tests share two keys.
var (
	keyOnce    sync.Once
	key1, key2 *rsa.PrivateKey
	ecKey      *ecdsa.PrivateKey
	errKeyGen  error
)

func keys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keyOnce.Do(func() {
		if key1, errKeyGen = rsa.GenerateKey(rand.Reader, 2048); errKeyGen != nil {
			return
		}
		if key2, errKeyGen = rsa.GenerateKey(rand.Reader, 2048); errKeyGen != nil {
			return
		}
		ecKey, errKeyGen = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	if errKeyGen != nil {
		t.Fatal(errKeyGen)
	}
	return key1, key2
}

// source is a KeySource double with a settable key set and failure, counting calls.
type source struct {
	mu    sync.Mutex
	keys  []spacejwt.PublicKey
	err   error
	calls atomic.Int32
}

func (s *source) PublicKeys(context.Context) ([]spacejwt.PublicKey, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, s.err
}

func (s *source) set(keys []spacejwt.PublicKey, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys, s.err = keys, err
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

func sign(t *testing.T, m jwt.SigningMethod, k any, kid string, c jwt.MapClaims) string {
	t.Helper()
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

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerify(t *testing.T) {
	key, other := keys(t)
	pubPEM := func() []byte {
		der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}()
	src := &source{keys: []spacejwt.PublicKey{{ID: "k1", EnvironmentID: "env1", Key: &key.PublicKey}}}
	now := time.Now()
	v, err := spacejwt.NewVerifier(src, spacejwt.Options{Leeway: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"aud": "rt", "sub": "space1", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	rs := func(kid string, mod func(jwt.MapClaims)) string {
		return sign(t, jwt.SigningMethodRS256, key, kid, claims(mod))
	}
	valid := rs("k1", nil)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64(`{"aud":"rt","sub":"space2","exp":9999999999}`) + "." + parts[2]
	roleTampered := parts[0] + "." + b64(`{"aud":"rt","sub":"space1","exp":9999999999,"role":"subscriber"}`) + "." + parts[2]

	bad := []struct {
		name     string
		token    string
		audience string
		want     error
	}{
		{"expired", rs("k1", func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }), "rt", spacejwt.ErrExpired},
		{"expired beyond leeway", rs("k1", func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() }), "rt", spacejwt.ErrExpired},
		{"not yet valid", rs("k1", func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), "rt", spacejwt.ErrNotYetValid},
		{"playback token used for rt", rs("k1", func(c jwt.MapClaims) { c["aud"] = "v" }), "rt", spacejwt.ErrAudience},
		{"rt token used for playback", valid, "v", spacejwt.ErrAudience},
		{"no audience", rs("k1", func(c jwt.MapClaims) { delete(c, "aud") }), "rt", spacejwt.ErrAudience},
		{"missing exp", rs("k1", func(c jwt.MapClaims) { delete(c, "exp") }), "rt", spacejwt.ErrMissingExpiry},
		{"unknown kid", rs("nope", nil), "rt", spacejwt.ErrUnknownKey},
		{"no kid anywhere", rs("", nil), "rt", spacejwt.ErrUnknownKey},
		{"signed by another key", sign(t, jwt.SigningMethodRS256, other, "k1", claims(nil)), "rt", spacejwt.ErrSignature},
		{"HS256 with the public key PEM as secret", sign(t, jwt.SigningMethodHS256, pubPEM, "k1", claims(nil)), "rt", spacejwt.ErrAlgorithm},
		{"HS256 with the modulus as secret", sign(t, jwt.SigningMethodHS256, key.PublicKey.N.Bytes(), "k1", claims(nil)), "rt", spacejwt.ErrAlgorithm},
		{"RS384", sign(t, jwt.SigningMethodRS384, key, "k1", claims(nil)), "rt", spacejwt.ErrAlgorithm},
		{"PS256", sign(t, jwt.SigningMethodPS256, key, "k1", claims(nil)), "rt", spacejwt.ErrAlgorithm},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, "k1", claims(nil)), "rt", spacejwt.ErrAlgorithm},
		{"alg none, no signature", b64(`{"alg":"none","typ":"JWT","kid":"k1"}`) + "." + parts[1] + ".", "rt", spacejwt.ErrAlgorithm},
		{"alg none, RS256 signature kept", b64(`{"alg":"none","kid":"k1"}`) + "." + parts[1] + "." + parts[2], "rt", spacejwt.ErrAlgorithm},
		{"alg NONE", b64(`{"alg":"NONE","kid":"k1"}`) + "." + parts[1] + ".", "rt", spacejwt.ErrAlgorithm},
		{"no alg", b64(`{"kid":"k1"}`) + "." + parts[1] + "." + parts[2], "rt", spacejwt.ErrAlgorithm},
		{"tampered payload", tampered, "rt", spacejwt.ErrSignature},
		{"tampered role", roleTampered, "rt", spacejwt.ErrSignature},
		{"signature stripped", parts[0] + "." + parts[1] + ".", "rt", spacejwt.ErrSignature},
		{"wrong role", rs("k1", func(c jwt.MapClaims) { c["role"] = "admin" }), "rt", spacejwt.ErrRole},
		{"role of wrong type", rs("k1", func(c jwt.MapClaims) { c["role"] = 1 }), "rt", spacejwt.ErrMalformed},
		{"no sub", rs("k1", func(c jwt.MapClaims) { delete(c, "sub") }), "rt", spacejwt.ErrSubject},
		{"empty", "", "rt", spacejwt.ErrMalformed},
		{"one word", "garbage", "rt", spacejwt.ErrMalformed},
		{"three dots of nothing", "..", "rt", spacejwt.ErrMalformed},
		{"not base64", "!!!.###.$$$", "rt", spacejwt.ErrMalformed},
		{"header not JSON", b64("hello") + "." + parts[1] + "." + parts[2], "rt", spacejwt.ErrMalformed},
		{"payload not JSON", parts[0] + "." + b64("hello") + "." + parts[2], "rt", spacejwt.ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], "rt", spacejwt.ErrMalformed},
		{"four parts", valid + ".x", "rt", spacejwt.ErrMalformed},
		{"huge", parts[0] + "." + strings.Repeat("A", 20<<10) + "." + parts[2], "rt", spacejwt.ErrMalformed},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tt.token, tt.audience)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if c != (spacejwt.Claims{}) {
				t.Fatalf("a rejected token returned claims %+v", c)
			}
		})
	}

	good := []struct {
		name     string
		token    string
		audience string
		want     spacejwt.Claims
	}{
		{"publisher by default", valid, "rt", spacejwt.Claims{Subject: "space1", EnvironmentID: "env1", KeyID: "k1", Role: "publisher"}},
		{"explicit publisher", rs("k1", func(c jwt.MapClaims) { c["role"] = "publisher"; c["participant_id"] = "alice" }), "rt",
			spacejwt.Claims{Subject: "space1", EnvironmentID: "env1", KeyID: "k1", Role: "publisher", ParticipantID: "alice"}},
		{"subscriber", rs("k1", func(c jwt.MapClaims) { c["role"] = "subscriber" }), "rt",
			spacejwt.Claims{Subject: "space1", EnvironmentID: "env1", KeyID: "k1", Role: "subscriber"}},
		{"kid only in the claims", rs("", func(c jwt.MapClaims) { c["kid"] = "k1" }), "rt",
			spacejwt.Claims{Subject: "space1", EnvironmentID: "env1", KeyID: "k1", Role: "publisher"}},
		{"audience list", rs("k1", func(c jwt.MapClaims) { c["aud"] = []string{"rt"} }), "rt",
			spacejwt.Claims{Subject: "space1", EnvironmentID: "env1", KeyID: "k1", Role: "publisher"}},
		{"expired within leeway", rs("k1", func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Second).Unix() }), "rt",
			spacejwt.Claims{Subject: "space1", EnvironmentID: "env1", KeyID: "k1", Role: "publisher"}},
		{"playback", rs("k1", func(c jwt.MapClaims) { c["aud"] = "v"; c["sub"] = "pb1" }), "v",
			spacejwt.Claims{Subject: "pb1", EnvironmentID: "env1", KeyID: "k1"}},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tt.token, tt.audience)
			if err != nil {
				t.Fatal(err)
			}
			if c.ExpiresAt.IsZero() {
				t.Fatal("ExpiresAt not set")
			}
			c.ExpiresAt, c.IssuedAt = time.Time{}, time.Time{}
			if c != tt.want {
				t.Fatalf("claims %+v, want %+v", c, tt.want)
			}
		})
	}
}

// A flood of tokens with unknown kids reaches the key source at most once per MinUnknownWait.
func TestUnknownKidRefreshIsRateLimited(t *testing.T) {
	key, _ := keys(t)
	clk := &clock{now: time.Now()}
	src := &source{keys: []spacejwt.PublicKey{{ID: "k1", Key: &key.PublicKey}}}
	const wait = time.Second
	v, _ := spacejwt.NewVerifier(src, spacejwt.Options{Now: clk.Now, MinUnknownWait: wait, RefreshEvery: time.Hour})
	tok := func(kid string) string {
		return sign(t, jwt.SigningMethodRS256, key, kid, jwt.MapClaims{"aud": "rt", "sub": "s", "exp": time.Now().Add(2 * time.Hour).Unix()})
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok("k1"), "rt"); err != nil {
		t.Fatal(err)
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("initial load made %d calls", n)
	}
	for window := 1; window <= 3; window++ {
		var wg sync.WaitGroup
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := v.Verify(ctx, tok("flood-"+time.Now().String()), "rt"); !errors.Is(err, spacejwt.ErrUnknownKey) {
					t.Errorf("unknown kid: %v", err)
				}
			}()
		}
		wg.Wait()
		if n := src.calls.Load(); n != int32(1+window) {
			t.Fatalf("window %d: %d source calls in total, want %d (one per MinUnknownWait)", window, n, 1+window)
		}
		clk.Add(wait)
	}
	// A key created meanwhile is found by the next allowed refresh.
	src.set([]spacejwt.PublicKey{{ID: "k1", Key: &key.PublicKey}, {ID: "k2", EnvironmentID: "env2", Key: &key.PublicKey}}, nil)
	if c, err := v.Verify(ctx, tok("k2"), "rt"); err != nil || c.EnvironmentID != "env2" {
		t.Fatalf("new key not picked up: %+v %v", c, err)
	}
}

// A key deleted at the source stops verifying once the cached set is older than RefreshEvery.
func TestDeletedKeyStopsVerifyingAfterRefreshEvery(t *testing.T) {
	key, _ := keys(t)
	clk := &clock{now: time.Now()}
	src := &source{keys: []spacejwt.PublicKey{{ID: "k1", Key: &key.PublicKey}}}
	const every = 10 * time.Second
	v, _ := spacejwt.NewVerifier(src, spacejwt.Options{Now: clk.Now, RefreshEvery: every, MinUnknownWait: time.Hour})
	tok := sign(t, jwt.SigningMethodRS256, key, "k1", jwt.MapClaims{"aud": "rt", "sub": "s", "exp": time.Now().Add(time.Hour).Unix()})
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok, "rt"); err != nil {
		t.Fatal(err)
	}
	src.set(nil, nil) // the key is deleted
	clk.Add(every - time.Millisecond)
	if _, err := v.Verify(ctx, tok, "rt"); err != nil {
		t.Fatalf("within RefreshEvery the cached key should still verify: %v", err)
	}
	clk.Add(2 * time.Millisecond)
	if _, err := v.Verify(ctx, tok, "rt"); !errors.Is(err, spacejwt.ErrUnknownKey) {
		t.Fatalf("deleted key still verifies after RefreshEvery: %v", err)
	}
}

// While the key source is down the cached keys keep working, and the verifier does not call
// the source on every request (each call can take seconds and holds up every verification).
func TestSourceOutageKeepsKeysAndBacksOff(t *testing.T) {
	key, _ := keys(t)
	clk := &clock{now: time.Now()}
	src := &source{keys: []spacejwt.PublicKey{{ID: "k1", Key: &key.PublicKey}}}
	const every, wait = 10 * time.Second, time.Second
	v, _ := spacejwt.NewVerifier(src, spacejwt.Options{Now: clk.Now, RefreshEvery: every, MinUnknownWait: wait})
	tok := sign(t, jwt.SigningMethodRS256, key, "k1", jwt.MapClaims{"aud": "rt", "sub": "s", "exp": time.Now().Add(time.Hour).Unix()})
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok, "rt"); err != nil {
		t.Fatal(err)
	}
	src.set(nil, errors.New("keys service unreachable"))
	clk.Add(every + time.Millisecond)
	for i := 0; i < 100; i++ {
		if _, err := v.Verify(ctx, tok, "rt"); err != nil {
			t.Fatalf("cached key dropped during an outage: %v", err)
		}
	}
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("100 verifications during an outage made %d source calls, want 1", n-1)
	}
	clk.Add(wait + time.Millisecond)
	_, _ = v.Verify(ctx, tok, "rt")
	if n := src.calls.Load(); n != 3 {
		t.Fatalf("no retry of the source after MinUnknownWait (%d calls)", n)
	}
	// Recovery: the next refresh replaces the set.
	src.set(nil, nil)
	clk.Add(every + time.Millisecond)
	if _, err := v.Verify(ctx, tok, "rt"); !errors.Is(err, spacejwt.ErrUnknownKey) {
		t.Fatalf("after recovery a deleted key still verifies: %v", err)
	}
}

func TestJWKRoundTrip(t *testing.T) {
	key, _ := keys(t)
	pk := spacejwt.PublicKey{ID: "k1", EnvironmentID: "env1", Key: &key.PublicKey}
	j := spacejwt.ToJWK(pk)
	if j.Kty != "RSA" || j.Alg != "RS256" || j.Use != "sig" || j.E != "AQAB" || j.Kid != "k1" {
		t.Fatalf("JWK %+v", j)
	}
	b, err := json.Marshal(spacejwt.JWKS{Keys: []spacejwt.JWK{j}})
	if err != nil {
		t.Fatal(err)
	}
	var set spacejwt.JWKS
	if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", b, err)
	}
	back, err := spacejwt.FromJWK(set.Keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if !back.Key.Equal(&key.PublicKey) || back.ID != "k1" || back.EnvironmentID != "env1" {
		t.Fatalf("round trip changed the key: %+v", back)
	}
	for name, mod := range map[string]func(j *spacejwt.JWK){
		"EC key":          func(j *spacejwt.JWK) { j.Kty = "EC" },
		"n not base64url": func(j *spacejwt.JWK) { j.N = "+/=" },
		"empty n":         func(j *spacejwt.JWK) { j.N = "" },
		"empty e":         func(j *spacejwt.JWK) { j.E = "" },
		"e too long":      func(j *spacejwt.JWK) { j.E = b64("123456789") },
		"e with padding":  func(j *spacejwt.JWK) { j.E = "AQAB==" },
	} {
		bad := j
		mod(&bad)
		if _, err := spacejwt.FromJWK(bad); err == nil {
			t.Errorf("%s: FromJWK accepted it", name)
		}
	}
}

func TestSign(t *testing.T) {
	key, _ := keys(t)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	der8, _ := x509.MarshalPKCS8PrivateKey(key)
	pkcs8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der8})
	b64pem := base64.StdEncoding.EncodeToString(pkcs1)
	wrapped := ""
	for i := 0; i < len(b64pem); i += 64 {
		wrapped += b64pem[i:min(i+64, len(b64pem))] + "\n"
	}
	src := &source{keys: []spacejwt.PublicKey{{ID: "k1", EnvironmentID: "env1", Key: &key.PublicKey}}}
	v, _ := spacejwt.NewVerifier(src, spacejwt.Options{})
	for name, priv := range map[string][]byte{
		"PKCS#1 PEM":            pkcs1,
		"PKCS#8 PEM":            pkcs8,
		"base64 of PEM":         []byte(b64pem),
		"base64 of PEM wrapped": []byte(wrapped),
	} {
		t.Run(name, func(t *testing.T) {
			before := time.Now()
			tok, err := spacejwt.Sign(priv, "k1", spacejwt.SignClaims{Audience: spacejwt.AudienceRT, Subject: "sp1", Role: "subscriber", ParticipantID: "bob", TTL: 10 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), tok, spacejwt.AudienceRT)
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != "sp1" || c.Role != "subscriber" || c.ParticipantID != "bob" || c.KeyID != "k1" || c.EnvironmentID != "env1" {
				t.Fatalf("claims %+v", c)
			}
			if ttl := c.ExpiresAt.Sub(before); ttl < 9*time.Minute || ttl > 11*time.Minute {
				t.Fatalf("token lives %v, want 10 min", ttl)
			}
			h, _, _ := strings.Cut(tok, ".")
			raw, _ := base64.RawURLEncoding.DecodeString(h)
			var head map[string]any
			if err := json.Unmarshal(raw, &head); err != nil || head["alg"] != "RS256" || head["kid"] != "k1" {
				t.Fatalf("header %s", raw)
			}
		})
	}
	tok, err := spacejwt.Sign(pkcs1, "k1", spacejwt.SignClaims{Audience: spacejwt.AudiencePlayback, Subject: "pb1"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(context.Background(), tok, spacejwt.AudiencePlayback); err != nil || c.ExpiresAt.Sub(time.Now()) < 59*time.Minute {
		t.Fatalf("default TTL token: %+v %v", c, err)
	}
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	for name, priv := range map[string][]byte{
		"empty":           nil,
		"garbage":         []byte("not a key"),
		"base64 garbage":  []byte(base64.StdEncoding.EncodeToString([]byte("not a key"))),
		"EC key":          pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
		"public key only": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)}),
	} {
		if _, err := spacejwt.Sign(priv, "k1", spacejwt.SignClaims{Audience: "rt", Subject: "s"}); err == nil {
			t.Errorf("%s: Sign accepted it", name)
		}
	}
}

func TestHTTPKeySource(t *testing.T) {
	key, other := keys(t)
	var mu sync.Mutex
	served := []spacejwt.JWK{spacejwt.ToJWK(spacejwt.PublicKey{ID: "k1", EnvironmentID: "env1", Key: &key.PublicKey})}
	status := http.StatusOK
	ks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/internal/v1/jwks" || r.Header.Get(auth.InternalAuthHeader) != "s3cret" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": spacejwt.JWKS{Keys: served}})
	}))
	defer ks.Close()
	src, err := spacejwt.NewHTTPKeySource(ks.URL, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.PublicKeys(context.Background())
	if err != nil || len(got) != 1 || got[0].ID != "k1" || got[0].EnvironmentID != "env1" || !got[0].Key.Equal(&key.PublicKey) {
		t.Fatalf("PublicKeys = %+v, %v", got, err)
	}
	v, _ := spacejwt.NewVerifier(src, spacejwt.Options{})
	good := sign(t, jwt.SigningMethodRS256, key, "k1", jwt.MapClaims{"aud": "rt", "sub": "s", "exp": time.Now().Add(time.Hour).Unix()})
	if c, err := v.Verify(context.Background(), good, "rt"); err != nil || c.EnvironmentID != "env1" {
		t.Fatalf("verify over HTTP: %+v %v", c, err)
	}
	forged := sign(t, jwt.SigningMethodRS256, other, "k1", jwt.MapClaims{"aud": "rt", "sub": "s", "exp": time.Now().Add(time.Hour).Unix()})
	if _, err := v.Verify(context.Background(), forged, "rt"); !errors.Is(err, spacejwt.ErrSignature) {
		t.Fatalf("forged token over HTTP: %v", err)
	}

	mu.Lock()
	served = append(served, spacejwt.JWK{Kty: "EC", Kid: "weird"})
	mu.Unlock()
	if _, err := src.PublicKeys(context.Background()); err == nil {
		t.Fatal("a malformed JWK in the set was accepted")
	}
	mu.Lock()
	status = http.StatusInternalServerError
	mu.Unlock()
	if _, err := src.PublicKeys(context.Background()); err == nil {
		t.Fatal("a 500 from the keys service was accepted")
	}
	wrong, _ := spacejwt.NewHTTPKeySource(ks.URL, "guess")
	if _, err := wrong.PublicKeys(context.Background()); err == nil {
		t.Fatal("wrong internal secret: keys returned")
	}
	if _, err := spacejwt.NewHTTPKeySource("", "x"); err == nil {
		t.Fatal("empty base URL accepted")
	}
}

func TestNewVerifierNeedsSource(t *testing.T) {
	if _, err := spacejwt.NewVerifier(nil, spacejwt.Options{}); err == nil {
		t.Fatal("nil source accepted")
	}
}

// Space JWTs are bounded: participant_id (at most 128 printable characters) and lifetime
// (exp - iat, or exp - now without iat, at most MaxLifetime; playback tokens are not bounded).
func TestSpaceTokenBounds(t *testing.T) {
	key, _ := keys(t)
	src := &source{keys: []spacejwt.PublicKey{{ID: "k1", EnvironmentID: "env1", Key: &key.PublicKey}}}
	now := time.Now()
	const day = 24 * time.Hour
	v, err := spacejwt.NewVerifier(src, spacejwt.Options{}) // default MaxLifetime: 30 days
	if err != nil {
		t.Fatal(err)
	}
	short, err := spacejwt.NewVerifier(src, spacejwt.Options{MaxLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(mod func(jwt.MapClaims)) string {
		c := jwt.MapClaims{"aud": "rt", "sub": "space1", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		mod(c)
		return sign(t, jwt.SigningMethodRS256, key, "k1", c)
	}
	pid := func(id string) string { return tok(func(c jwt.MapClaims) { c["participant_id"] = id }) }
	life := func(iat, exp time.Duration) string {
		return tok(func(c jwt.MapClaims) { c["iat"] = now.Add(iat).Unix(); c["exp"] = now.Add(exp).Unix() })
	}
	noIAT := func(exp time.Duration) string {
		return tok(func(c jwt.MapClaims) { delete(c, "iat"); c["exp"] = now.Add(exp).Unix() })
	}
	tests := []struct {
		name     string
		v        *spacejwt.Verifier
		token    string
		audience string
		want     error // nil = accepted
	}{
		{"participant_id of 128 ASCII characters", v, pid(strings.Repeat("a", 128)), "rt", nil},
		{"participant_id of 128 non-ASCII characters", v, pid(strings.Repeat("é", 128)), "rt", nil},
		{"participant_id with spaces and punctuation", v, pid("Alice Smith <alice@example.com>"), "rt", nil},
		{"participant_id of 129 characters", v, pid(strings.Repeat("a", 129)), "rt", spacejwt.ErrParticipantID},
		{"participant_id of 100 kB", v, pid(strings.Repeat("a", 10000)), "rt", spacejwt.ErrParticipantID},
		{"participant_id with NUL", v, pid("ali\x00ce"), "rt", spacejwt.ErrParticipantID},
		{"participant_id with newline", v, pid("alice\n"), "rt", spacejwt.ErrParticipantID},
		{"participant_id with tab", v, pid("al\tice"), "rt", spacejwt.ErrParticipantID},
		{"participant_id with DEL", v, pid("alice\x7f"), "rt", spacejwt.ErrParticipantID},
		{"participant_id with C1 control", v, pid("alice\u0085"), "rt", spacejwt.ErrParticipantID},
		{"participant_id with bidi override", v, pid("alice\u202e"), "rt", spacejwt.ErrParticipantID},
		{"participant_id with zero-width space", v, pid("ali\u200bce"), "rt", spacejwt.ErrParticipantID},
		{"lifetime 30 days", v, life(0, 30*day), "rt", nil},
		{"lifetime 30 days + 1 minute", v, life(0, 30*day+time.Minute), "rt", spacejwt.ErrLifetime},
		{"lifetime 10 years", v, life(0, 3650*day), "rt", spacejwt.ErrLifetime},
		{"issued 29 days ago, valid 2 more days", v, life(-29*day, 2*day), "rt", spacejwt.ErrLifetime},
		{"no iat, exp in 29 days", v, noIAT(29 * day), "rt", nil},
		{"no iat, exp in 31 days", v, noIAT(31 * day), "rt", spacejwt.ErrLifetime},
		{"setting of 1 h: 59 min", short, life(0, 59*time.Minute), "rt", nil},
		{"setting of 1 h: 2 h", short, life(0, 2*time.Hour), "rt", spacejwt.ErrLifetime},
		{"playback token of 10 years", v, tok(func(c jwt.MapClaims) { c["aud"] = "v"; c["exp"] = now.Add(3650 * day).Unix() }), "v", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.v.Verify(context.Background(), tt.token, tt.audience)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if c != (spacejwt.Claims{}) {
				t.Fatalf("a rejected token returned claims %+v", c)
			}
		})
	}
	if _, err := spacejwt.Sign(pemOf(key), "k1", spacejwt.SignClaims{Audience: "rt", Subject: "s", ParticipantID: "a\x00"}); !errors.Is(err, spacejwt.ErrParticipantID) {
		t.Fatalf("Sign with a NUL participant_id: %v", err)
	}
}

// HasKey follows the key source within RefreshEvery and keeps answering from the cache while
// the source is down.
func TestHasKey(t *testing.T) {
	key, _ := keys(t)
	clk := &clock{now: time.Now()}
	src := &source{keys: []spacejwt.PublicKey{{ID: "k1", Key: &key.PublicKey}}}
	const every = 10 * time.Second
	v, _ := spacejwt.NewVerifier(src, spacejwt.Options{Now: clk.Now, RefreshEvery: every, MinUnknownWait: time.Second})
	ctx := context.Background()
	if !v.HasKey(ctx, "k1") || v.HasKey(ctx, "k2") {
		t.Fatal("HasKey wrong on the first load")
	}
	src.set(nil, errors.New("keys service down"))
	clk.Add(every + time.Millisecond)
	if !v.HasKey(ctx, "k1") {
		t.Fatal("an outage made the key look deleted")
	}
	src.set(nil, nil) // deleted
	clk.Add(every + time.Millisecond)
	if v.HasKey(ctx, "k1") {
		t.Fatal("deleted key still present after RefreshEvery")
	}
}

func pemOf(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}
