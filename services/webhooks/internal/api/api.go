// Package api serves /system/v1/webhook-endpoints.
package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/services/webhooks/internal/deliver"
	"github.com/spacecast/spacecast/services/webhooks/internal/signing"
	"github.com/spacecast/spacecast/services/webhooks/internal/ssrf"
	"github.com/spacecast/spacecast/services/webhooks/internal/store"
)

// Scheduler makes a delivery due now.
type Scheduler interface {
	Schedule(ctx context.Context, member string, due time.Time) error
}

// API holds the handlers' dependencies.
type API struct {
	Store      *store.Store
	Guard      *ssrf.Guard
	Queue      Scheduler
	Wake       func()
	RotateKeep time.Duration // how long the old secret keeps signing (24 h)

	DefaultRateLimit int // rate limit of a new endpoint that sets none (0 = unlimited)
}

// MaxRateLimit is the highest per-endpoint rate limit, in deliveries per second.
const MaxRateLimit = 10000

// Register mounts the routes.
func (a *API) Register(e *echo.Echo, authn *auth.Verifier) {
	g := e.Group("/system/v1/webhook-endpoints", authn.Middleware())
	g.POST("", a.create, auth.Require(auth.SystemWrite))
	g.GET("", a.list, auth.Require(auth.SystemRead))
	g.GET("/:id", a.get, auth.Require(auth.SystemRead))
	g.PATCH("/:id", a.update, auth.Require(auth.SystemWrite))
	g.DELETE("/:id", a.delete, auth.Require(auth.SystemWrite))
	g.POST("/:id/rotate-secret", a.rotate, auth.Require(auth.SystemWrite))
	g.GET("/:id/deliveries", a.deliveries, auth.Require(auth.SystemRead))
	g.POST("/:id/deliveries/:did/redeliver", a.redeliver, auth.Require(auth.SystemWrite))
}

func mapErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.NotFound("webhook endpoint not found")
	}
	return err
}

type request struct {
	URL       *string   `json:"url"`
	Events    *[]string `json:"events"`
	Enabled   *bool     `json:"enabled"`
	RateLimit *int      `json:"rate_limit"`
}

// apply validates r onto ep.
func (a *API) apply(c echo.Context, r request, ep *store.Endpoint) error {
	if r.URL != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
		defer cancel()
		u, err := a.Guard.CheckURL(ctx, *r.URL)
		if err != nil {
			return httpapi.Invalid("url: %v", err)
		}
		ep.URL = u.String()
	}
	if r.Events != nil {
		known := events.WebhookTypes()
		evs := []string{}
		for _, t := range *r.Events {
			if !slices.Contains(known, t) {
				return httpapi.Invalid("events: unknown event type %q", t)
			}
			if !slices.Contains(evs, t) {
				evs = append(evs, t)
			}
		}
		ep.Events = evs
	}
	if r.Enabled != nil {
		ep.Enabled = *r.Enabled
	}
	if r.RateLimit != nil {
		if *r.RateLimit < 0 || *r.RateLimit > MaxRateLimit {
			return httpapi.Invalid("rate_limit must be between 0 (no limit) and %d deliveries per second", MaxRateLimit)
		}
		ep.RateLimit = *r.RateLimit
	}
	return nil
}

type withSecret struct {
	store.Endpoint
	Secret string `json:"secret"`
}

func (a *API) create(c echo.Context) error {
	var r request
	if err := httpapi.Bind(c, &r); err != nil {
		return err
	}
	if r.URL == nil {
		return httpapi.Invalid("url is required")
	}
	ep := store.Endpoint{ID: idgen.New(), EnvironmentID: auth.PrincipalFrom(c).EnvironmentID, Events: []string{}, Enabled: true, Secret: signing.NewSecret(), RateLimit: a.DefaultRateLimit}
	if err := a.apply(c, r, &ep); err != nil {
		return err
	}
	ep, err := a.Store.CreateEndpoint(c.Request().Context(), ep)
	if err != nil {
		return err
	}
	return httpapi.Data(c, http.StatusCreated, withSecret{Endpoint: ep, Secret: ep.Secret})
}

func (a *API) list(c echo.Context) error {
	pg, err := httpapi.Paging(c)
	if err != nil {
		return err
	}
	eps, next, err := a.Store.ListEndpoints(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, pg)
	if err != nil {
		return err
	}
	return httpapi.List(c, eps, next)
}

func (a *API) endpoint(c echo.Context) (store.Endpoint, error) {
	ep, err := a.Store.GetEndpoint(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id"))
	return ep, mapErr(err)
}

func (a *API) get(c echo.Context) error {
	ep, err := a.endpoint(c)
	if err != nil {
		return err
	}
	return httpapi.Data(c, http.StatusOK, ep)
}

func (a *API) update(c echo.Context) error {
	var r request
	if err := httpapi.Bind(c, &r); err != nil {
		return err
	}
	ep, err := a.endpoint(c)
	if err != nil {
		return err
	}
	if err := a.apply(c, r, &ep); err != nil {
		return err
	}
	if err := a.Store.UpdateEndpoint(c.Request().Context(), ep); err != nil {
		return mapErr(err)
	}
	ep, err = a.endpoint(c)
	if err != nil {
		return err
	}
	return httpapi.Data(c, http.StatusOK, ep)
}

func (a *API) delete(c echo.Context) error {
	if err := a.Store.DeleteEndpoint(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id")); err != nil {
		return mapErr(err)
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *API) rotate(c echo.Context) error {
	var r struct{}
	if err := httpapi.Bind(c, &r); err != nil {
		return err
	}
	secret := signing.NewSecret()
	env := auth.PrincipalFrom(c).EnvironmentID
	if err := a.Store.RotateSecret(c.Request().Context(), env, c.Param("id"), secret, time.Now().Add(a.RotateKeep)); err != nil {
		return mapErr(err)
	}
	ep, err := a.endpoint(c)
	if err != nil {
		return err
	}
	return httpapi.Data(c, http.StatusOK, withSecret{Endpoint: ep, Secret: secret})
}

func (a *API) deliveries(c echo.Context) error {
	pg, err := httpapi.Paging(c)
	if err != nil {
		return err
	}
	ep, err := a.endpoint(c)
	if err != nil {
		return err
	}
	ds, next, err := a.Store.ListDeliveries(c.Request().Context(), ep.ID, pg)
	if err != nil {
		return err
	}
	return httpapi.List(c, ds, next)
}

func (a *API) redeliver(c echo.Context) error {
	ep, err := a.endpoint(c)
	if err != nil {
		return err
	}
	if !ep.Enabled {
		return httpapi.Conflict("the endpoint is disabled: enable it before redelivering")
	}
	did := c.Param("did")
	if err := a.Store.Redeliver(c.Request().Context(), ep.ID, did); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("delivery not found")
		}
		return err
	}
	if err := a.Queue.Schedule(c.Request().Context(), deliver.Member(ep.ID, did), time.Now()); err != nil {
		return err
	}
	a.Wake()
	return httpapi.Empty(c)
}
