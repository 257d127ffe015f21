// Package keys is the keys service's wiring: environments, access tokens, RSA signing keys
// and the JWKS other services verify space and playback JWTs with.
package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/services/keys/internal/api"
	"github.com/spacecast/spacecast/services/keys/internal/store"
)

// Config are the keys service's own settings.
type Config struct {
	InternalSecret       string // SPACECAST_INTERNAL_SECRET: enables /internal/v1 for other services
	BootstrapTokenID     string // SPACECAST_BOOTSTRAP_TOKEN_ID
	BootstrapTokenSecret string // SPACECAST_BOOTSTRAP_TOKEN_SECRET
	KeyBits              int    // RSA size of new signing keys (2048)
}

var bootstrapIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{8,128}$`)

// LoadConfig reads the settings.
func LoadConfig(r *envconfig.Reader) Config {
	c := Config{
		InternalSecret:       r.String("SPACECAST_INTERNAL_SECRET", ""),
		BootstrapTokenID:     r.String("SPACECAST_BOOTSTRAP_TOKEN_ID", ""),
		BootstrapTokenSecret: r.String("SPACECAST_BOOTSTRAP_TOKEN_SECRET", ""),
		KeyBits:              2048,
	}
	if (c.BootstrapTokenID == "") != (c.BootstrapTokenSecret == "") {
		r.Fail("SPACECAST_BOOTSTRAP_TOKEN_ID", "set both SPACECAST_BOOTSTRAP_TOKEN_ID and SPACECAST_BOOTSTRAP_TOKEN_SECRET, or neither")
	}
	if c.BootstrapTokenID != "" && !bootstrapIDRE.MatchString(c.BootstrapTokenID) {
		r.Fail("SPACECAST_BOOTSTRAP_TOKEN_ID", "want 8 to 128 characters of A-Z a-z 0-9 _ -")
	}
	if c.BootstrapTokenSecret != "" && len(c.BootstrapTokenSecret) < 16 {
		r.Fail("SPACECAST_BOOTSTRAP_TOKEN_SECRET", "want at least 16 characters")
	}
	return c
}

// Deps are the clients the service uses.
type Deps struct {
	Logger    *slog.Logger
	DB        *sqldb.DB
	Publisher outbox.Publisher
	// Auth authenticates requests; nil means the service verifies against its own store.
	Auth *auth.Verifier
}

// Service is a running keys service.
type Service struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	relay *outbox.Relay
	api   *api.API
	authn *auth.Verifier
}

var (
	_ auth.TokenLookup       = (*Service)(nil)
	_ auth.EnvironmentLookup = (*Service)(nil)
	_ spacejwt.KeySource     = (*Service)(nil)
)

// New migrates the database and builds the service.
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	if d.Logger == nil || d.DB == nil || d.Publisher == nil {
		return nil, errors.New("keys: Logger, DB and Publisher are required")
	}
	log := d.Logger.With("service", "keys")
	st, err := store.Open(ctx, d.DB)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	relay, err := outbox.NewRelay(outbox.RelayConfig{DB: d.DB, Publisher: d.Publisher, Logger: log})
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: log, store: st, relay: relay, authn: d.Auth}
	if s.authn == nil {
		if s.authn, err = auth.NewVerifier(s, auth.VerifierOptions{Logger: log}); err != nil {
			return nil, err
		}
	}
	s.api = &api.API{Store: st, Log: log, Relay: relay, InternalSecret: cfg.InternalSecret, KeyBits: cfg.KeyBits}
	return s, nil
}

// Register mounts the REST routes (and /internal/v1 when an internal secret is set).
func (s *Service) Register(e *echo.Echo) { s.api.Register(e, s.authn) }

// Run publishes the outbox until ctx ends.
func (s *Service) Run(ctx context.Context) error { return s.relay.Run(ctx) }

// Ping checks the database (readiness).
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// LookupToken implements auth.TokenLookup in process.
func (s *Service) LookupToken(ctx context.Context, id string) (auth.TokenRecord, error) {
	t, err := s.store.GetToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return auth.TokenRecord{}, auth.ErrTokenNotFound
	}
	if err != nil {
		return auth.TokenRecord{}, err
	}
	return auth.TokenRecord{ID: t.ID, EnvironmentID: t.EnvironmentID, SecretHash: t.SecretHash, Permissions: t.Permissions, Admin: t.Admin, Revoked: t.Revoked}, nil
}

// LookupEnvironment implements auth.EnvironmentLookup in process.
func (s *Service) LookupEnvironment(ctx context.Context, id string) (auth.Environment, error) {
	env, err := s.store.GetEnvironment(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return auth.Environment{}, auth.ErrEnvironmentNotFound
	}
	if err != nil {
		return auth.Environment{}, err
	}
	return auth.Environment{ID: env.ID, Name: env.Name}, nil
}

// PublicKeys implements spacejwt.KeySource in process.
func (s *Service) PublicKeys(ctx context.Context) ([]spacejwt.PublicKey, error) {
	return api.PublicKeys(ctx, s.store, "")
}

// Bootstrapped says what Bootstrap did.
type Bootstrapped struct {
	Created       bool
	TokenID       string
	Secret        string // empty unless Created with a generated secret
	EnvironmentID string
}

// Bootstrap makes sure an admin token exists. With SPACECAST_BOOTSTRAP_TOKEN_ID/SECRET set it
// makes that token exist with that secret; otherwise, on the first start only, it creates an
// admin token with a generated secret and returns it (to print once).
func (s *Service) Bootstrap(ctx context.Context) (Bootstrapped, error) {
	envID, err := s.defaultEnvironment(ctx)
	if err != nil {
		return Bootstrapped{}, err
	}
	if id := s.cfg.BootstrapTokenID; id != "" {
		t, err := s.store.GetToken(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if _, err := s.store.CreateToken(ctx, store.AccessToken{ID: id, Name: "bootstrap admin", EnvironmentID: envID,
				Permissions: auth.AllPermissions, Admin: true, SecretHash: auth.HashSecret(s.cfg.BootstrapTokenSecret)}); err != nil {
				return Bootstrapped{}, err
			}
			s.relay.Notify()
			return Bootstrapped{Created: true, TokenID: id, EnvironmentID: envID}, nil
		case err != nil:
			return Bootstrapped{}, err
		}
		if err := s.store.SetTokenSecret(ctx, id, auth.HashSecret(s.cfg.BootstrapTokenSecret)); err != nil {
			return Bootstrapped{}, err
		}
		return Bootstrapped{TokenID: id, EnvironmentID: t.EnvironmentID}, nil
	}
	n, err := s.store.CountAdmins(ctx)
	if err != nil || n > 0 {
		return Bootstrapped{EnvironmentID: envID}, err
	}
	secret := idgen.Secret()
	t, err := s.store.CreateToken(ctx, store.AccessToken{ID: idgen.New(), Name: "bootstrap admin", EnvironmentID: envID,
		Permissions: auth.AllPermissions, Admin: true, SecretHash: auth.HashSecret(secret)})
	if err != nil {
		return Bootstrapped{}, err
	}
	s.relay.Notify()
	return Bootstrapped{Created: true, TokenID: t.ID, Secret: secret, EnvironmentID: envID}, nil
}

// defaultEnvironment returns the oldest environment, creating "Development" if none exists.
func (s *Service) defaultEnvironment(ctx context.Context) (string, error) {
	envs, err := s.store.ListEnvironments(ctx, 1_000_000, 0)
	if err != nil {
		return "", err
	}
	if len(envs) > 0 {
		return envs[len(envs)-1].ID, nil
	}
	env, err := s.store.CreateEnvironment(ctx, idgen.New(), "Development")
	if err != nil {
		return "", err
	}
	s.relay.Notify()
	return env.ID, nil
}
