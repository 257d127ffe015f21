// Package auth checks HTTP Basic access tokens (token id : token secret) for every REST call.
// Token records come from the keys service through a TokenLookup and are cached in process:
// a request costs no network hop once its token is cached, and a cached record is refreshed in
// the background after 2 s and never used when older than 4 s, so a revocation takes effect
// everywhere within 5 s.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/httpapi"
)

// Permissions.
const (
	VideoRead   = "video:read"
	VideoWrite  = "video:write"
	SystemRead  = "system:read"
	SystemWrite = "system:write"
)

// AllPermissions lists every permission, in display order.
var AllPermissions = []string{VideoRead, VideoWrite, SystemRead, SystemWrite}

// TokenRecord is what the verifier needs to know about a token.
type TokenRecord struct {
	ID            string   `json:"id"`
	EnvironmentID string   `json:"environment_id"`
	SecretHash    []byte   `json:"secret_hash"`
	Permissions   []string `json:"permissions"`
	Admin         bool     `json:"admin"`
	Revoked       bool     `json:"revoked"`
}

// TokenLookup fetches a token record by id.
type TokenLookup interface {
	LookupToken(ctx context.Context, id string) (TokenRecord, error)
}

// Environment is an environment's id and name.
type Environment struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// EnvironmentLookup fetches an environment by id.
type EnvironmentLookup interface {
	LookupEnvironment(ctx context.Context, id string) (Environment, error)
}

// HashSecret is how token secrets are stored: secrets are 256-bit random strings, so a
// plain SHA-256 is a sound one-way hash for them.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Principal is the authenticated caller.
type Principal struct {
	TokenID       string
	EnvironmentID string
	Permissions   []string
	Admin         bool
}

// Can reports whether p holds perm (admins hold every permission).
func (p Principal) Can(perm string) bool { return p.Admin || slices.Contains(p.Permissions, perm) }

const principalKey = "spacecast.principal"

// PrincipalFrom returns the caller set by Middleware.
func PrincipalFrom(c echo.Context) Principal {
	p, _ := c.Get(principalKey).(Principal)
	return p
}

// WithPrincipal stores p on c (tests and in-process callers).
func WithPrincipal(c echo.Context, p Principal) { c.Set(principalKey, p) }

// VerifierOptions tune the cache.
type VerifierOptions struct {
	Logger       *slog.Logger
	RefreshAfter time.Duration // background refresh of a used record after this age (default 2 s)
	MaxAge       time.Duration // a record older than this is fetched synchronously (default 4 s)
	NegativeTTL  time.Duration // unknown ids are remembered this long (default 1 s)
	Now          func() time.Time
}

// Verifier authenticates requests.
type Verifier struct {
	lookup TokenLookup
	o      VerifierOptions
	log    *slog.Logger

	mu      sync.Mutex
	cache   map[string]*entry
	pending map[string]chan struct{}
}

type entry struct {
	rec     TokenRecord
	missing bool
	fetched time.Time
}

// NewVerifier returns a Verifier over lookup.
func NewVerifier(lookup TokenLookup, o VerifierOptions) (*Verifier, error) {
	if lookup == nil {
		return nil, errors.New("auth: a token lookup is required")
	}
	if o.RefreshAfter <= 0 {
		o.RefreshAfter = 2 * time.Second
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 4 * time.Second
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Verifier{lookup: lookup, o: o, log: log.With("component", "auth"), cache: map[string]*entry{}, pending: map[string]chan struct{}{}}, nil
}

// Authenticate checks a token id and secret and returns its principal.
func (v *Verifier) Authenticate(ctx context.Context, id, secret string) (Principal, error) {
	if id == "" || secret == "" || len(id) > 128 || len(secret) > 256 {
		return Principal{}, httpapi.Unauthorized("missing or malformed access token credentials")
	}
	rec, missing, err := v.record(ctx, id)
	if err != nil {
		return Principal{}, err
	}
	want := rec.SecretHash
	if missing {
		want = make([]byte, sha256.Size) // compare anyway so timing does not reveal which ids exist
	}
	ok := subtle.ConstantTimeCompare(HashSecret(secret), want) == 1
	if missing || !ok {
		return Principal{}, httpapi.Unauthorized("invalid access token id or secret")
	}
	if rec.Revoked {
		return Principal{}, httpapi.Unauthorized("this access token has been revoked")
	}
	return Principal{TokenID: rec.ID, EnvironmentID: rec.EnvironmentID, Permissions: rec.Permissions, Admin: rec.Admin}, nil
}

func (v *Verifier) record(ctx context.Context, id string) (TokenRecord, bool, error) {
	now := v.o.Now()
	v.mu.Lock()
	e := v.cache[id]
	if e != nil {
		age := now.Sub(e.fetched)
		maxAge := v.o.MaxAge
		if e.missing {
			maxAge = v.o.NegativeTTL
		}
		if age < maxAge {
			if !e.missing && age >= v.o.RefreshAfter {
				v.refreshLocked(id) // keep hot tokens fresh off the request path
			}
			v.mu.Unlock()
			return e.rec, e.missing, nil
		}
	}
	v.mu.Unlock()
	return v.fetch(ctx, id)
}

func (v *Verifier) refreshLocked(id string) {
	if _, busy := v.pending[id]; busy {
		return
	}
	done := make(chan struct{})
	v.pending[id] = done
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		v.load(ctx, id, done)
	}()
}

// fetch loads synchronously, sharing one lookup among concurrent callers.
func (v *Verifier) fetch(ctx context.Context, id string) (TokenRecord, bool, error) {
	v.mu.Lock()
	done, busy := v.pending[id]
	if !busy {
		done = make(chan struct{})
		v.pending[id] = done
		v.mu.Unlock()
		v.load(ctx, id, done)
	} else {
		v.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return TokenRecord{}, false, ctx.Err()
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.cache[id]
	if e == nil || v.o.Now().Sub(e.fetched) > v.o.MaxAge {
		return TokenRecord{}, false, errors.New("auth: access token lookup failed")
	}
	return e.rec, e.missing, nil
}

func (v *Verifier) load(ctx context.Context, id string, done chan struct{}) {
	rec, err := v.lookup.LookupToken(ctx, id)
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case err == nil:
		v.cache[id] = &entry{rec: rec, fetched: v.o.Now()}
	case errors.Is(err, ErrTokenNotFound):
		v.cache[id] = &entry{missing: true, fetched: v.o.Now()}
	default:
		v.log.Warn("access token lookup failed", "token_id", id, "err", err)
	}
	if len(v.cache) > 100_000 { // bound memory against id-guessing floods
		for k, e := range v.cache {
			if e.missing {
				delete(v.cache, k)
			}
		}
	}
	delete(v.pending, id)
	close(done)
}

// Forget drops a cached token (e.g. on an access_token.revoked event).
func (v *Verifier) Forget(id string) {
	v.mu.Lock()
	delete(v.cache, id)
	v.mu.Unlock()
}

// Middleware authenticates HTTP Basic credentials, stores the principal and applies the
// server's rate limiter (httpapi.Options.RateLimiter) to the token.
func (v *Verifier) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id, secret, ok := c.Request().BasicAuth()
			if !ok {
				c.Response().Header().Set("WWW-Authenticate", `Basic realm="spacecast"`)
				return httpapi.Unauthorized("this request needs HTTP Basic credentials: access token id and secret")
			}
			p, err := v.Authenticate(c.Request().Context(), id, secret)
			if err != nil {
				return err
			}
			WithPrincipal(c, p)
			// Limits are per access token, so they apply once the token is known.
			if err := httpapi.RateLimit(c, p.TokenID); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// Require rejects callers without perm with 403.
func Require(perm string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !PrincipalFrom(c).Can(perm) {
				return httpapi.Forbidden("this access token lacks the " + perm + " permission")
			}
			return next(c)
		}
	}
}

// RequireAdmin rejects non-admin callers with 403.
func RequireAdmin() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !PrincipalFrom(c).Admin {
				return httpapi.Forbidden("this request needs an admin access token")
			}
			return next(c)
		}
	}
}
