// Package api serves the spaces REST routes.
package api

import (
	"errors"
	"fmt"
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
	g.POST("/:id/broadcasts", a.createBroadcast, auth.Require(auth.VideoWrite))
	g.GET("/:id/broadcasts/:bid", a.getBroadcast, auth.Require(auth.VideoRead))
	g.DELETE("/:id/broadcasts/:bid", a.deleteBroadcast, auth.Require(auth.VideoWrite))
	g.POST("/:id/broadcasts/:bid/start", a.startBroadcast, auth.Require(auth.VideoWrite))
	g.POST("/:id/broadcasts/:bid/stop", a.stopBroadcast, auth.Require(auth.VideoWrite))
}

// mapErr is the one place store errors become API errors.
func mapErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return httpapi.NotFound("space not found")
	case errors.Is(err, store.ErrActive):
		return httpapi.Conflict("the space is active: wait until every participant has left")
	case errors.Is(err, store.ErrBroadcastNotFound):
		return httpapi.NotFound("broadcast not found")
	case errors.Is(err, store.ErrBroadcastExists):
		return httpapi.Conflict("the space already has a broadcast: a space has at most one")
	case errors.Is(err, store.ErrBroadcastActive):
		return httpapi.Conflict("the broadcast is active: stop it first")
	case errors.Is(err, store.ErrSpaceNotActive):
		return httpapi.Conflict("the space is not active: a broadcast starts only while participants are connected")
	case errors.Is(err, store.ErrUnknownLiveStream):
		return httpapi.Invalid("live_stream_id: no such live stream in this environment")
	case errors.Is(err, store.ErrLiveStreamGone):
		return httpapi.Conflict("live_stream_id: the broadcast's live stream was deleted; delete the broadcast and create another")
	case errors.Is(err, store.ErrLiveStreamBroadcast):
		return httpapi.Conflict("live_stream_id: another active broadcast is sending to this live stream")
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
		Type        *string            `json:"type"`
		Passthrough *string            `json:"passthrough"`
		Broadcasts  []broadcastRequest `json:"broadcasts"`
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
	if len(req.Broadcasts) > 1 {
		return httpapi.Invalid("broadcasts: a space has at most one broadcast")
	}
	var nbs []store.NewBroadcast
	for i, br := range req.Broadcasts {
		nb, err := br.validate(fmt.Sprintf("broadcasts[%d].", i))
		if err != nil {
			return err
		}
		nbs = append(nbs, nb)
	}
	ctx := c.Request().Context()
	sp, bs, err := a.Store.Create(ctx, auth.PrincipalFrom(c).EnvironmentID, typ, req.Passthrough, nbs...)
	if err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return httpapi.Data(c, http.StatusCreated, resource.NewSpace(sp, bs))
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
	ids := make([]string, len(sps))
	for i, sp := range sps {
		ids[i] = sp.ID
	}
	bs, err := a.Store.Broadcasts(c.Request().Context(), ids...)
	if err != nil {
		return err
	}
	return httpapi.List(c, resource.NewSpaces(sps, bs), next)
}

func (a *API) get(c echo.Context) error {
	sp, err := a.Store.Get(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id"))
	if err != nil {
		return mapErr(err)
	}
	return a.space(c, http.StatusOK, sp)
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
	return a.space(c, http.StatusOK, sp)
}

func (a *API) delete(c echo.Context) error {
	if err := a.Store.Delete(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id")); err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return c.NoContent(http.StatusNoContent)
}

// space answers sp's resource with its broadcasts.
func (a *API) space(c echo.Context, status int, sp store.Row) error {
	bs, err := a.Store.Broadcasts(c.Request().Context(), sp.ID)
	if err != nil {
		return err
	}
	return httpapi.Data(c, status, resource.NewSpace(sp, bs[sp.ID]))
}
