// Package spacejwt verifies and signs the RS256 JWTs that admit clients to spaces (aud "rt")
// and to signed playback ids (aud "v"). Public keys come from the keys service (a KeySource),
// are cached, refreshed when an unknown kid shows up (rate-limited) and periodically, so a
// deleted signing key stops verifying.
package spacejwt

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Audiences.
const (
	AudienceRT       = "rt"
	AudiencePlayback = "v"
	// Images of a signed playback id (Mux's audiences): thumbnails and animated GIF/WebP.
	AudienceThumbnail = "t"
	AudienceAnimated  = "g"
)

// Roles.
const (
	RolePublisher  = "publisher"
	RoleSubscriber = "subscriber"
)

// PublicKey is one signing key's public half and its environment.
type PublicKey struct {
	ID            string
	EnvironmentID string
	Key           *rsa.PublicKey
}

// KeySource lists every current public signing key.
type KeySource interface {
	PublicKeys(ctx context.Context) ([]PublicKey, error)
}

// Claims are the verified claims Spacecast uses.
type Claims struct {
	Subject       string
	EnvironmentID string
	KeyID         string
	Role          string
	ParticipantID string
	ExpiresAt     time.Time
	IssuedAt      time.Time // zero when the token has no iat
}

// Bounds on what a space JWT (aud rt) may carry.
const (
	// MaxParticipantIDLength is the longest participant_id accepted, in characters.
	MaxParticipantIDLength = 128
	// DefaultMaxLifetime is the longest validity (exp - iat, or exp - now without iat) of a
	// space JWT unless Options.MaxLifetime says otherwise.
	DefaultMaxLifetime = 30 * 24 * time.Hour
)

// Options tune a Verifier.
type Options struct {
	Logger         *slog.Logger
	RefreshEvery   time.Duration // periodic refresh (default 10 s)
	MinUnknownWait time.Duration // at most one refresh per this on unknown kids (default 1 s)
	Leeway         time.Duration // clock skew allowed on exp/nbf/iat (default 5 s)
	// MaxLifetime bounds how long a space JWT (aud rt) may be valid: exp - iat, or exp - now
	// when it has no iat (default DefaultMaxLifetime). Playback tokens are not bounded.
	MaxLifetime time.Duration
	Now         func() time.Time
}

// Verifier checks tokens.
type Verifier struct {
	src KeySource
	o   Options
	log *slog.Logger

	mu          sync.Mutex
	keys        map[string]PublicKey
	loaded      time.Time
	lastUnknown time.Time
}

// NewVerifier returns a Verifier over src.
func NewVerifier(src KeySource, o Options) (*Verifier, error) {
	if src == nil {
		return nil, errors.New("spacejwt: a key source is required")
	}
	if o.RefreshEvery <= 0 {
		o.RefreshEvery = 10 * time.Second
	}
	if o.MinUnknownWait <= 0 {
		o.MinUnknownWait = time.Second
	}
	if o.Leeway <= 0 {
		o.Leeway = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = DefaultMaxLifetime
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Verifier{src: src, o: o, log: log.With("component", "spacejwt"), keys: map[string]PublicKey{}}, nil
}

// key returns the key for kid, refreshing when stale or unknown.
func (v *Verifier) key(ctx context.Context, kid string) (PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.o.Now()
	if now.Sub(v.loaded) > v.o.RefreshEvery {
		v.reloadLocked(ctx, now)
	}
	if k, ok := v.keys[kid]; ok {
		return k, nil
	}
	if now.Sub(v.lastUnknown) >= v.o.MinUnknownWait {
		v.lastUnknown = now
		v.reloadLocked(ctx, now)
		if k, ok := v.keys[kid]; ok {
			return k, nil
		}
	}
	return PublicKey{}, ErrUnknownKey
}

func (v *Verifier) reloadLocked(ctx context.Context, now time.Time) {
	ks, err := v.src.PublicKeys(ctx)
	if err != nil {
		v.log.Warn("refreshing signing keys failed; keeping the cached set", "err", err)
		// Retry after MinUnknownWait, not on every request: each attempt holds the lock, so
		// an unreachable source would otherwise stall every verification behind it.
		v.loaded = now.Add(-v.o.RefreshEvery).Add(v.o.MinUnknownWait)
		return
	}
	m := make(map[string]PublicKey, len(ks))
	for _, k := range ks {
		m[k.ID] = k
	}
	v.keys, v.loaded = m, now
}

type claims struct {
	jwt.RegisteredClaims
	KID           string `json:"kid,omitempty"`
	Role          string `json:"role,omitempty"`
	ParticipantID string `json:"participant_id,omitempty"`
}

// Verify checks token for audience and returns its claims.
func (v *Verifier) Verify(ctx context.Context, token, audience string) (Claims, error) {
	if err := checkHeader(token); err != nil {
		return Claims{}, err
	}
	var pk PublicKey
	var keyErr error
	c := &claims{}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(v.o.Leeway),
		jwt.WithTimeFunc(v.o.Now),
	)
	_, err := p.ParseWithClaims(token, c, func(t *jwt.Token) (any, error) {
		if t.Method.Alg() != "RS256" {
			return nil, ErrAlgorithm
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			kid = t.Claims.(*claims).KID
		}
		if kid == "" {
			keyErr = ErrUnknownKey
			return nil, keyErr
		}
		pk, keyErr = v.key(ctx, kid)
		if keyErr != nil {
			return nil, keyErr
		}
		return pk.Key, nil
	})
	if err != nil {
		return Claims{}, mapErr(err, keyErr, c.ExpiresAt == nil)
	}
	if c.Subject == "" {
		return Claims{}, ErrSubject
	}
	role := c.Role
	if audience == AudienceRT {
		if role == "" {
			role = RolePublisher
		}
		if role != RolePublisher && role != RoleSubscriber {
			return Claims{}, ErrRole
		}
		if err := CheckParticipantID(c.ParticipantID); err != nil {
			return Claims{}, err
		}
		from := v.o.Now()
		if c.IssuedAt != nil {
			from = c.IssuedAt.Time
		}
		if c.ExpiresAt.Sub(from) > v.o.MaxLifetime {
			return Claims{}, fmt.Errorf("%w (longest allowed: %s)", ErrLifetime, v.o.MaxLifetime)
		}
	}
	out := Claims{Subject: c.Subject, EnvironmentID: pk.EnvironmentID, KeyID: pk.ID, Role: role, ParticipantID: c.ParticipantID}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
	if c.IssuedAt != nil {
		out.IssuedAt = c.IssuedAt.Time
	}
	return out, nil
}

// CheckParticipantID accepts an empty id (the server generates one) or valid UTF-8 of at
// most MaxParticipantIDLength printable characters; anything else is ErrParticipantID.
func CheckParticipantID(id string) error {
	if id == "" {
		return nil
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%w: not valid UTF-8", ErrParticipantID)
	}
	if n := utf8.RuneCountInString(id); n > MaxParticipantIDLength {
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrParticipantID, n, MaxParticipantIDLength)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: contains the non-printable character %U", ErrParticipantID, r)
		}
	}
	return nil
}

// HasKey reports whether kid is still a current signing key, refreshing the cached set when
// it is older than RefreshEvery. While the key source is unreachable the cached set answers,
// so an outage never reports keys as deleted.
func (v *Verifier) HasKey(ctx context.Context, kid string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.o.Now()
	if now.Sub(v.loaded) > v.o.RefreshEvery {
		v.reloadLocked(ctx, now)
	}
	_, ok := v.keys[kid]
	return ok
}

func mapErr(err, keyErr error, expMissing bool) error {
	switch {
	case keyErr != nil:
		return keyErr
	case errors.Is(err, ErrAlgorithm):
		return ErrAlgorithm
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return ErrAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && expMissing:
		return ErrMissingExpiry
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ErrAudience // the only other required claim: a token without aud
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrAudience
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// checkHeader rejects tokens whose header does not say RS256 (none, HS*, ES*, ...) before
// anything else looks at them, so the reason given is the algorithm, not the signature.
func checkHeader(token string) error {
	head, _, ok := strings.Cut(token, ".")
	if !ok || len(token) > 16<<10 {
		return ErrMalformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ErrMalformed
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return ErrMalformed
	}
	if h.Alg != "RS256" {
		return ErrAlgorithm
	}
	return nil
}

// SignClaims are what Sign puts in a token.
type SignClaims struct {
	Audience      string // AudienceRT or AudiencePlayback
	Subject       string // space id or playback id
	Role          string // rt only; empty = publisher
	ParticipantID string
	TTL           time.Duration // default 1 h
}

// Sign makes an RS256 token with kid in the header and the claims; privateKeyPEM is the PEM
// (or the base64 of the PEM, as the API returns it) of an RSA private key.
func Sign(privateKeyPEM []byte, kid string, sc SignClaims) (string, error) {
	key, err := ParsePrivateKey(privateKeyPEM)
	if err != nil {
		return "", err
	}
	if sc.TTL <= 0 {
		sc.TTL = time.Hour
	}
	if err := CheckParticipantID(sc.ParticipantID); err != nil {
		return "", err
	}
	now := time.Now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sc.Subject,
			Audience:  jwt.ClaimStrings{sc.Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(sc.TTL)),
			IssuedAt:  jwt.NewNumericDate(now),
		},
		KID:           kid,
		Role:          sc.Role,
		ParticipantID: sc.ParticipantID,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = kid
	return t.SignedString(key)
}

// ParsePrivateKey reads an RSA private key from PEM (PKCS#1 or PKCS#8) or base64 of PEM.
func ParsePrivateKey(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		dec, err := base64.StdEncoding.DecodeString(string(trimSpace(b)))
		if err != nil {
			return nil, errors.New("spacejwt: private key is neither PEM nor base64 of PEM")
		}
		if block, _ = pem.Decode(dec); block == nil {
			return nil, errors.New("spacejwt: private key is not PEM")
		}
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("spacejwt: parse private key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("spacejwt: private key is not RSA")
	}
	return rk, nil
}

func trimSpace(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c != ' ' && c != '\n' && c != '\r' && c != '\t' {
			out = append(out, c)
		}
	}
	return out
}

// JWK is one RSA public key in JWKS form, with Spacecast's environment_id member.
type JWK struct {
	Kty           string `json:"kty"`
	Use           string `json:"use"`
	Alg           string `json:"alg"`
	Kid           string `json:"kid"`
	N             string `json:"n"`
	E             string `json:"e"`
	EnvironmentID string `json:"environment_id,omitempty"`
}

// JWKS is a key set document.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// ToJWK renders a public key.
func ToJWK(k PublicKey) JWK {
	return JWK{Kty: "RSA", Use: "sig", Alg: "RS256", Kid: k.ID, EnvironmentID: k.EnvironmentID,
		N: base64.RawURLEncoding.EncodeToString(k.Key.N.Bytes()),
		E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.Key.E)).Bytes())}
}

// FromJWK parses an RSA JWK.
func FromJWK(j JWK) (PublicKey, error) {
	if j.Kty != "RSA" {
		return PublicKey{}, fmt.Errorf("spacejwt: key %s is %q, not RSA", j.Kid, j.Kty)
	}
	n, err1 := base64.RawURLEncoding.DecodeString(j.N)
	e, err2 := base64.RawURLEncoding.DecodeString(j.E)
	if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
		return PublicKey{}, fmt.Errorf("spacejwt: key %s has a malformed modulus or exponent", j.Kid)
	}
	return PublicKey{ID: j.Kid, EnvironmentID: j.EnvironmentID,
		Key: &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}}, nil
}
