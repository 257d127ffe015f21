// Package api serves the spaces REST routes.
package api

import (
	"errors"
	"net/http"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/services/spaces-api/internal/resource"
	"github.com/spacecast/spacecast/services/spaces-api/internal/store"
)

// Notifier is woken after a transaction that wrote events.
type Notifier interface{ Notify() }

// API holds the handlers' dependencies.
type API struct {
	Store *store.Store
	Relay Notifier
}

// Register mounts /video/v1/spaces behind authn.
func (a *API) Register(e *echo.Echo, authn *auth.Verifier) {
	g := e.Group("/video/v1/spaces", authn.Middleware())
	g.POST("", a.create, auth.Require(auth.VideoWrite))
	g.GET("", a.list, auth.Require(auth.VideoRead))
	g.GET("/:id", a.get, auth.Require(auth.VideoRead))
	g.PATCH("/:id", a.update, auth.Require(auth.VideoWrite))
	g.DELETE("/:id", a.delete, auth.Require(auth.VideoWrite))
	// Broadcasts are not built yet: Mux's broadcast calls get an error naming the feature
	// rather than "no such route".
	g.POST("/:id/broadcasts", a.createBroadcast, auth.Require(auth.VideoWrite))
	g.GET("/:id/broadcasts/:bid", a.noBroadcast, auth.Require(auth.VideoRead))
	g.DELETE("/:id/broadcasts/:bid", a.noBroadcast, auth.Require(auth.VideoWrite))
	g.POST("/:id/broadcasts/:bid/start", a.noBroadcast, auth.Require(auth.VideoWrite))
	g.POST("/:id/broadcasts/:bid/stop", a.noBroadcast, auth.Require(auth.VideoWrite))
}

// errNoBroadcasts is the message of every refused broadcast call.
const errNoBroadcasts = "broadcasts: this server does not support broadcasts yet"

// mapErr is the one place store errors become API errors.
func mapErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return httpapi.NotFound("space not found")
	case errors.Is(err, store.ErrActive):
		return httpapi.Conflict("the space is active: wait until every participant has left")
	}
	return err
}

const maxPassthrough = 255

func checkPassthrough(p *string) error {
	if p != nil && utf8.RuneCountInString(*p) > maxPassthrough {
		return httpapi.Invalid("passthrough must be at most %d characters", maxPassthrough)
	}
	return nil
}

func (a *API) create(c echo.Context) error {
	var req struct {
		Type        *string           `json:"type"`
		Passthrough *string           `json:"passthrough"`
		Broadcasts  *[]map[string]any `json:"broadcasts"`
	}
	if err := httpapi.Bind(c, &req); err != nil {
		return err
	}
	typ := "server"
	if req.Type != nil && *req.Type != "server" {
		return httpapi.Invalid(`type must be "server"`)
	}
	if err := checkPassthrough(req.Passthrough); err != nil {
		return err
	}
	if req.Broadcasts != nil && len(*req.Broadcasts) > 0 {
		return httpapi.Invalid(errNoBroadcasts)
	}
	sp, err := a.Store.Create(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, typ, req.Passthrough)
	if err != nil {
		return err
	}
	a.Relay.Notify()
	return httpapi.Data(c, http.StatusCreated, resource.NewSpace(sp))
}

func (a *API) list(c echo.Context) error {
	pg, err := httpapi.Paging(c)
	if err != nil {
		return err
	}
	sps, next, err := a.Store.List(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, pg)
	if err != nil {
		return err
	}
	return httpapi.List(c, resource.NewSpaces(sps), next)
}

func (a *API) get(c echo.Context) error {
	sp, err := a.Store.Get(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id"))
	if err != nil {
		return mapErr(err)
	}
	return httpapi.Data(c, http.StatusOK, resource.NewSpace(sp))
}

func (a *API) update(c echo.Context) error {
	var req struct {
		Passthrough *string `json:"passthrough"`
	}
	if err := httpapi.Bind(c, &req); err != nil {
		return err
	}
	if req.Passthrough == nil {
		return httpapi.Invalid("passthrough is the only field a space update takes, and it is missing")
	}
	if err := checkPassthrough(req.Passthrough); err != nil {
		return err
	}
	sp, err := a.Store.UpdatePassthrough(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id"), req.Passthrough)
	if err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return httpapi.Data(c, http.StatusOK, resource.NewSpace(sp))
}

func (a *API) delete(c echo.Context) error {
	if err := a.Store.Delete(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id")); err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return c.NoContent(http.StatusNoContent)
}

// createBroadcast answers POST /video/v1/spaces/{id}/broadcasts: 404 for a space the caller
// cannot see, else a 400 naming the missing feature. Nothing is stored.
func (a *API) createBroadcast(c echo.Context) error {
	if _, err := a.Store.Get(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id")); err != nil {
		return mapErr(err)
	}
	return httpapi.Invalid(errNoBroadcasts)
}

// noBroadcast answers the calls on one broadcast: no broadcast exists, so 404 (after the
// space's own 404), naming the missing feature.
func (a *API) noBroadcast(c echo.Context) error {
	if _, err := a.Store.Get(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id")); err != nil {
		return mapErr(err)
	}
	return httpapi.NotFound("broadcast not found: this server does not support broadcasts yet")
}
