// Package api serves the keys service's REST routes.
package api

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/services/keys/internal/resource"
	"github.com/spacecast/spacecast/services/keys/internal/store"
)

// Notifier is woken after a transaction that wrote events.
type Notifier interface{ Notify() }

// API holds the handlers' dependencies.
type API struct {
	Store          *store.Store
	Log            *slog.Logger
	Relay          Notifier
	InternalSecret string
	// KeyBits is the RSA size of new signing keys (2048).
	KeyBits int
}

// Register mounts the routes. authn authenticates /system/v1 and /video/v1.
func (a *API) Register(e *echo.Echo, authn *auth.Verifier) {
	sys := e.Group("/system/v1", authn.Middleware())
	sys.GET("/whoami", a.whoami)
	sys.POST("/signing-keys", a.createKey, auth.Require(auth.SystemWrite))
	sys.GET("/signing-keys", a.listKeys, auth.Require(auth.SystemRead))
	sys.GET("/signing-keys/:id", a.getKey, auth.Require(auth.SystemRead))
	sys.DELETE("/signing-keys/:id", a.deleteKey, auth.Require(auth.SystemWrite))
	sys.GET("/jwks", a.envJWKS, auth.Require(auth.SystemRead))

	sys.POST("/access-tokens", a.createToken, auth.RequireAdmin())
	sys.GET("/access-tokens", a.listTokens, auth.RequireAdmin())
	sys.GET("/access-tokens/:id", a.getToken, auth.RequireAdmin())
	sys.DELETE("/access-tokens/:id", a.revokeToken, auth.RequireAdmin())
	sys.POST("/environments", a.createEnv, auth.RequireAdmin())
	sys.GET("/environments", a.listEnvs, auth.RequireAdmin())
	sys.GET("/environments/:id", a.getEnv, auth.RequireAdmin())

	// Old clients used the video API paths for signing keys.
	vid := e.Group("/video/v1", authn.Middleware())
	vid.POST("/signing-keys", a.createKey, auth.Require(auth.VideoWrite))
	vid.GET("/signing-keys", a.listKeys, auth.Require(auth.VideoRead))
	vid.GET("/signing-keys/:id", a.getKey, auth.Require(auth.VideoRead))
	vid.DELETE("/signing-keys/:id", a.deleteKey, auth.Require(auth.VideoWrite))

	if a.InternalSecret != "" {
		in := e.Group("/internal/v1", a.internalOnly)
		in.GET("/access-tokens/:id", a.internalToken)
		in.GET("/environments/:id", a.internalEnv)
		in.GET("/jwks", a.internalJWKS)
	}
}

func (a *API) internalOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		got := c.Request().Header.Get(auth.InternalAuthHeader)
		if subtle.ConstantTimeCompare([]byte(got), []byte(a.InternalSecret)) != 1 {
			return httpapi.Unauthorized("internal API: missing or wrong " + auth.InternalAuthHeader + " header")
		}
		return next(c)
	}
}

func (a *API) notify() {
	if a.Relay != nil {
		a.Relay.Notify()
	}
}

// mapErr turns store errors into API errors (the one place this service does so).
func mapErr(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return httpapi.NotFound(what + " not found")
	case errors.Is(err, store.ErrExists):
		return httpapi.Conflict(what + " already exists")
	}
	return err
}

func (a *API) whoami(c echo.Context) error {
	p := auth.PrincipalFrom(c)
	env, err := a.Store.GetEnvironment(c.Request().Context(), p.EnvironmentID)
	if err != nil {
		return mapErr(err, "environment")
	}
	perms := p.Permissions
	if p.Admin {
		perms = auth.AllPermissions
	}
	tok, err := a.Store.GetToken(c.Request().Context(), p.TokenID)
	if err != nil {
		return mapErr(err, "access token")
	}
	// Spacecast's fields, and those of Mux's whoami that Spacecast has (it has no organizations
	// and no environment types, so organization_* and environment_type are absent).
	return httpapi.Data(c, http.StatusOK, map[string]any{
		"access_token_id":   p.TokenID,
		"access_token_name": tok.Name,
		"environment":       envView(env),
		"environment_id":    env.ID,
		"environment_name":  env.Name,
		"permissions":       perms,
		"admin":             p.Admin,
	})
}

func keyView(k store.SigningKey) resource.SigningKey {
	return resource.SigningKey{ID: k.ID, CreatedAt: k.CreatedAt}
}

func tokenView(t store.AccessToken) resource.AccessToken {
	return resource.AccessToken{ID: t.ID, Name: t.Name, EnvironmentID: t.EnvironmentID, Permissions: t.Permissions, Admin: t.Admin, CreatedAt: t.CreatedAt}
}

func envView(e store.Environment) resource.Environment {
	return resource.Environment{ID: e.ID, Name: e.Name, CreatedAt: e.CreatedAt}
}

func (a *API) createKey(c echo.Context) error {
	var req struct{}
	if err := httpapi.Bind(c, &req); err != nil {
		return err
	}
	bits := a.KeyBits
	if bits == 0 {
		bits = 2048
	}
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return err
	}
	k, err := a.Store.CreateSigningKey(c.Request().Context(), store.SigningKey{
		ID:            idgen.New(),
		EnvironmentID: auth.PrincipalFrom(c).EnvironmentID,
		PublicKeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
	})
	if err != nil {
		return err
	}
	a.notify()
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)})
	// The private half exists only in this response: it is never stored.
	v := keyView(k)
	v.PrivateKey = base64.StdEncoding.EncodeToString(privPEM)
	return httpapi.Data(c, http.StatusCreated, v)
}

func (a *API) listKeys(c echo.Context) error {
	pg, err := httpapi.Paging(c)
	if err != nil {
		return err
	}
	ks, next, err := a.Store.ListSigningKeys(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, pg)
	if err != nil {
		return err
	}
	out := make([]resource.SigningKey, len(ks))
	for i, k := range ks {
		out[i] = keyView(k)
	}
	return httpapi.List(c, out, next)
}

func (a *API) getKey(c echo.Context) error {
	k, err := a.Store.GetSigningKey(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id"))
	if err != nil {
		return mapErr(err, "signing key")
	}
	return httpapi.Data(c, http.StatusOK, keyView(k))
}

func (a *API) deleteKey(c echo.Context) error {
	if err := a.Store.DeleteSigningKey(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id")); err != nil {
		return mapErr(err, "signing key")
	}
	a.notify()
	return c.NoContent(http.StatusNoContent)
}

// PublicKeys returns every signing key's public half (env "" = all environments).
func PublicKeys(ctx context.Context, s *store.Store, env string) ([]spacejwt.PublicKey, error) {
	ks, err := s.AllSigningKeys(ctx, env)
	if err != nil {
		return nil, err
	}
	out := make([]spacejwt.PublicKey, 0, len(ks))
	for _, k := range ks {
		block, _ := pem.Decode([]byte(k.PublicKeyPEM))
		if block == nil {
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			continue
		}
		if rk, ok := pub.(*rsa.PublicKey); ok {
			out = append(out, spacejwt.PublicKey{ID: k.ID, EnvironmentID: k.EnvironmentID, Key: rk})
		}
	}
	return out, nil
}

func (a *API) jwks(c echo.Context, env string) error {
	ks, err := PublicKeys(c.Request().Context(), a.Store, env)
	if err != nil {
		return err
	}
	set := spacejwt.JWKS{Keys: make([]spacejwt.JWK, len(ks))}
	for i, k := range ks {
		set.Keys[i] = spacejwt.ToJWK(k)
	}
	return httpapi.Data(c, http.StatusOK, set)
}

func (a *API) envJWKS(c echo.Context) error { return a.jwks(c, auth.PrincipalFrom(c).EnvironmentID) }

func (a *API) internalJWKS(c echo.Context) error { return a.jwks(c, "") }

var nameRE = regexp.MustCompile(`^[\p{L}\p{N} _.\-]{1,100}$`)

func (a *API) createToken(c echo.Context) error {
	var req struct {
		Name          string    `json:"name"`
		EnvironmentID string    `json:"environment_id"`
		Permissions   *[]string `json:"permissions"`
	}
	if err := httpapi.Bind(c, &req); err != nil {
		return err
	}
	if !nameRE.MatchString(req.Name) {
		return httpapi.Invalid("name is required: 1 to 100 letters, digits, spaces, '_', '.' or '-'")
	}
	if req.EnvironmentID == "" {
		req.EnvironmentID = auth.PrincipalFrom(c).EnvironmentID
	}
	if _, err := a.Store.GetEnvironment(c.Request().Context(), req.EnvironmentID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.Invalid("environment_id %q does not name an environment", req.EnvironmentID)
		}
		return err
	}
	if req.Permissions == nil || len(*req.Permissions) == 0 {
		return httpapi.Invalid("permissions is required: one or more of %s", strings.Join(auth.AllPermissions, ", "))
	}
	perms := []string{}
	for _, p := range *req.Permissions {
		if !slices.Contains(auth.AllPermissions, p) {
			return httpapi.Invalid("permissions: %q is not one of %s", p, strings.Join(auth.AllPermissions, ", "))
		}
		if !slices.Contains(perms, p) {
			perms = append(perms, p)
		}
	}
	secret := idgen.Secret()
	t, err := a.Store.CreateToken(c.Request().Context(), store.AccessToken{
		ID: idgen.New(), Name: req.Name, EnvironmentID: req.EnvironmentID, Permissions: perms, SecretHash: auth.HashSecret(secret),
	})
	if err != nil {
		return mapErr(err, "access token")
	}
	a.notify()
	v := tokenView(t)
	v.Secret = secret
	return httpapi.Data(c, http.StatusCreated, v)
}

func (a *API) listTokens(c echo.Context) error {
	pg, err := httpapi.Paging(c)
	if err != nil {
		return err
	}
	ts, next, err := a.Store.ListTokens(c.Request().Context(), c.QueryParam("environment_id"), pg)
	if err != nil {
		return err
	}
	out := make([]resource.AccessToken, len(ts))
	for i, t := range ts {
		out[i] = tokenView(t)
	}
	return httpapi.List(c, out, next)
}

func (a *API) getToken(c echo.Context) error {
	t, err := a.Store.GetToken(c.Request().Context(), c.Param("id"))
	if err == nil && t.Revoked {
		err = store.ErrNotFound
	}
	if err != nil {
		return mapErr(err, "access token")
	}
	return httpapi.Data(c, http.StatusOK, tokenView(t))
}

func (a *API) revokeToken(c echo.Context) error {
	if err := a.Store.RevokeToken(c.Request().Context(), c.Param("id")); err != nil {
		return mapErr(err, "access token")
	}
	a.notify()
	return c.NoContent(http.StatusNoContent)
}

func (a *API) createEnv(c echo.Context) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := httpapi.Bind(c, &req); err != nil {
		return err
	}
	if !nameRE.MatchString(req.Name) {
		return httpapi.Invalid("name is required: 1 to 100 letters, digits, spaces, '_', '.' or '-'")
	}
	env, err := a.Store.CreateEnvironment(c.Request().Context(), idgen.New(), req.Name)
	if err != nil {
		return mapErr(err, "environment")
	}
	a.notify()
	return httpapi.Data(c, http.StatusCreated, envView(env))
}

func (a *API) listEnvs(c echo.Context) error {
	pg, err := httpapi.Paging(c)
	if err != nil {
		return err
	}
	envs, next, err := a.Store.PageEnvironments(c.Request().Context(), pg)
	if err != nil {
		return err
	}
	out := make([]resource.Environment, len(envs))
	for i, e := range envs {
		out[i] = envView(e)
	}
	return httpapi.List(c, out, next)
}

func (a *API) getEnv(c echo.Context) error {
	env, err := a.Store.GetEnvironment(c.Request().Context(), c.Param("id"))
	if err != nil {
		return mapErr(err, "environment")
	}
	return httpapi.Data(c, http.StatusOK, envView(env))
}

func (a *API) internalToken(c echo.Context) error {
	t, err := a.Store.GetToken(c.Request().Context(), c.Param("id"))
	if err != nil {
		return mapErr(err, "access token")
	}
	return httpapi.Data(c, http.StatusOK, auth.TokenRecord{ID: t.ID, EnvironmentID: t.EnvironmentID, SecretHash: t.SecretHash,
		Permissions: t.Permissions, Admin: t.Admin, Revoked: t.Revoked})
}

func (a *API) internalEnv(c echo.Context) error {
	env, err := a.Store.GetEnvironment(c.Request().Context(), c.Param("id"))
	if err != nil {
		return mapErr(err, "environment")
	}
	return httpapi.Data(c, http.StatusOK, auth.Environment{ID: env.ID, Name: env.Name})
}
