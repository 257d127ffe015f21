// Package api serves /system/v1/webhooks (Mux's shape) and its legacy alias
// /system/v1/webhook-endpoints.
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
	"github.com/spacecast/spacecast/libs/ssrf"
	"github.com/spacecast/spacecast/services/webhooks/internal/deliver"
	"github.com/spacecast/spacecast/services/webhooks/internal/resource"
	"github.com/spacecast/spacecast/services/webhooks/internal/signing"
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

// Register mounts the routes: /system/v1/webhooks in Mux's shape, and the legacy
// /system/v1/webhook-endpoints (url for address, secret for signing_secret, created_at in
// unix seconds) as an alias over the same endpoints.
func (a *API) Register(e *echo.Echo, authn *auth.Verifier) {
	for _, sh := range []shape{{legacy: false}, {legacy: true}} {
		h := handlers{API: a, shape: sh}
		g := e.Group(sh.base(), authn.Middleware())
		g.POST("", h.create, auth.Require(auth.SystemWrite))
		g.GET("", h.list, auth.Require(auth.SystemRead))
		g.GET("/:id", h.get, auth.Require(auth.SystemRead))
		g.PATCH("/:id", h.update, auth.Require(auth.SystemWrite))
		g.DELETE("/:id", h.delete, auth.Require(auth.SystemWrite))
		g.POST("/:id/rotate-secret", h.rotate, auth.Require(auth.SystemWrite))
		g.GET("/:id/deliveries", h.deliveries, auth.Require(auth.SystemRead))
		g.POST("/:id/deliveries/:did/redeliver", h.redeliver, auth.Require(auth.SystemWrite))
	}
}

// shape is one of the two REST shapes of an endpoint.
type shape struct{ legacy bool }

func (s shape) base() string {
	if s.legacy {
		return "/system/v1/webhook-endpoints"
	}
	return "/system/v1/webhooks"
}

// addressField names the receiver URL's field in this shape.
func (s shape) addressField() string {
	if s.legacy {
		return "url"
	}
	return "address"
}

// view is ep's resource in this shape; secret is shown when non-empty (create, rotation).
func (s shape) view(ep store.Endpoint, secret string) any {
	if s.legacy {
		v := resource.NewEndpoint(ep)
		v.Secret = secret
		return v
	}
	v := resource.NewWebhook(ep)
	v.SigningSecret = secret
	return v
}

// bind reads a create or update body of this shape.
func (s shape) bind(c echo.Context) (request, error) {
	var r request
	if s.legacy {
		var l struct {
			URL       *string   `json:"url"`
			Events    *[]string `json:"events"`
			Enabled   *bool     `json:"enabled"`
			RateLimit *int      `json:"rate_limit"`
		}
		err := httpapi.Bind(c, &l)
		r = request{Address: l.URL, Events: l.Events, Enabled: l.Enabled, RateLimit: l.RateLimit}
		return r, err
	}
	err := httpapi.Bind(c, &r)
	return r, err
}

type handlers struct {
	*API
	shape
}

// mapErr names the missing resource as this shape calls it.
func (s shape) mapErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		if s.legacy {
			return httpapi.NotFound("webhook endpoint not found")
		}
		return httpapi.NotFound("webhook not found")
	}
	return err
}

type request struct {
	Address   *string   `json:"address"`
	Events    *[]string `json:"events"`
	Enabled   *bool     `json:"enabled"`
	RateLimit *int      `json:"rate_limit"`
}

// apply validates r onto ep.
func (h handlers) apply(c echo.Context, r request, ep *store.Endpoint) error {
	if r.Address != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
		defer cancel()
		u, err := h.Guard.CheckURL(ctx, *r.Address)
		if err != nil {
			return httpapi.Invalid("%s: %v", h.addressField(), err)
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

func (h handlers) create(c echo.Context) error {
	r, err := h.bind(c)
	if err != nil {
		return err
	}
	if r.Address == nil {
		return httpapi.Invalid("%s is required", h.addressField())
	}
	ep := store.Endpoint{ID: idgen.New(), EnvironmentID: auth.PrincipalFrom(c).EnvironmentID, Events: []string{}, Enabled: true, Secret: signing.NewSecret(), RateLimit: h.DefaultRateLimit}
	if err := h.apply(c, r, &ep); err != nil {
		return err
	}
	ep, err = h.Store.CreateEndpoint(c.Request().Context(), ep)
	if err != nil {
		return err
	}
	return httpapi.Data(c, http.StatusCreated, h.view(ep, ep.Secret))
}

func (h handlers) list(c echo.Context) error {
	pg, err := httpapi.Paging(c)
	if err != nil {
		return err
	}
	eps, next, err := h.Store.ListEndpoints(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, pg)
	if err != nil {
		return err
	}
	out := make([]any, len(eps))
	for i, ep := range eps {
		out[i] = h.view(ep, "")
	}
	return httpapi.List(c, out, next)
}

func (h handlers) endpoint(c echo.Context) (store.Endpoint, error) {
	ep, err := h.Store.GetEndpoint(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id"))
	return ep, h.mapErr(err)
}

func (h handlers) get(c echo.Context) error {
	ep, err := h.endpoint(c)
	if err != nil {
		return err
	}
	return httpapi.Data(c, http.StatusOK, h.view(ep, ""))
}

func (h handlers) update(c echo.Context) error {
	r, err := h.bind(c)
	if err != nil {
		return err
	}
	if !h.legacy && r == (request{}) {
		return httpapi.Invalid("give at least one of address, enabled, events or rate_limit")
	}
	ep, err := h.endpoint(c)
	if err != nil {
		return err
	}
	if err := h.apply(c, r, &ep); err != nil {
		return err
	}
	if err := h.Store.UpdateEndpoint(c.Request().Context(), ep); err != nil {
		return h.mapErr(err)
	}
	ep, err = h.endpoint(c)
	if err != nil {
		return err
	}
	return httpapi.Data(c, http.StatusOK, h.view(ep, ""))
}

func (h handlers) delete(c echo.Context) error {
	if err := h.Store.DeleteEndpoint(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id")); err != nil {
		return h.mapErr(err)
	}
	return c.NoContent(http.StatusNoContent)
}

func (h handlers) rotate(c echo.Context) error {
	var r struct{}
	if err := httpapi.Bind(c, &r); err != nil {
		return err
	}
	secret := signing.NewSecret()
	env := auth.PrincipalFrom(c).EnvironmentID
	if err := h.Store.RotateSecret(c.Request().Context(), env, c.Param("id"), secret, time.Now().Add(h.RotateKeep)); err != nil {
		return h.mapErr(err)
	}
	ep, err := h.endpoint(c)
	if err != nil {
		return err
	}
	return httpapi.Data(c, http.StatusOK, h.view(ep, secret))
}

func (h handlers) deliveries(c echo.Context) error {
	pg, err := httpapi.Paging(c)
	if err != nil {
		return err
	}
	ep, err := h.endpoint(c)
	if err != nil {
		return err
	}
	ds, next, err := h.Store.ListDeliveries(c.Request().Context(), ep.ID, pg)
	if err != nil {
		return err
	}
	out := make([]resource.Delivery, len(ds))
	for i, d := range ds {
		out[i] = resource.NewDelivery(d, h.legacy)
	}
	return httpapi.List(c, out, next)
}

func (h handlers) redeliver(c echo.Context) error {
	ep, err := h.endpoint(c)
	if err != nil {
		return err
	}
	if !ep.Enabled {
		return httpapi.Conflict("the endpoint is disabled: enable it before redelivering")
	}
	did := c.Param("did")
	if err := h.Store.Redeliver(c.Request().Context(), ep.ID, did); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("delivery not found")
		}
		return err
	}
	if err := h.Queue.Schedule(c.Request().Context(), deliver.Member(ep.ID, did), time.Now()); err != nil {
		return err
	}
	h.Wake()
	return httpapi.Empty(c)
}
