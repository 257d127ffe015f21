package api

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/services/spaces-api/internal/resource"
	"github.com/spacecast/spacecast/services/spaces-api/internal/store"
)

// Layouts and resolutions a broadcast takes (Mux's), the first of each the default.
var (
	Layouts     = []string{"gallery", "active-speaker", "crop"}
	Resolutions = []string{"1920x1080", "1280x720", "1080x1920", "720x1280", "1080x1080", "720x720"}
)

const maxBackgroundURL = 2048

// broadcastRequest is the body of POST /video/v1/spaces/{id}/broadcasts and an element of a
// space create's broadcasts.
type broadcastRequest struct {
	LiveStreamID *string `json:"live_stream_id"`
	Passthrough  *string `json:"passthrough"`
	Layout       *string `json:"layout"`
	Background   *string `json:"background"`
	Resolution   *string `json:"resolution"`
}

// validate checks r; field names in messages are prefixed with prefix.
func (r broadcastRequest) validate(prefix string) (store.NewBroadcast, error) {
	nb := store.NewBroadcast{Layout: Layouts[0], Resolution: Resolutions[0], Passthrough: r.Passthrough, Background: r.Background}
	if r.LiveStreamID == nil || *r.LiveStreamID == "" {
		return nb, httpapi.Invalid("%slive_stream_id is required", prefix)
	}
	if len(*r.LiveStreamID) > 255 {
		return nb, httpapi.Invalid("%slive_stream_id: no such live stream in this environment", prefix)
	}
	nb.LiveStreamID = *r.LiveStreamID
	if r.Layout != nil {
		if !slices.Contains(Layouts, *r.Layout) {
			return nb, httpapi.Invalid("%slayout must be one of gallery, active-speaker, crop", prefix)
		}
		nb.Layout = *r.Layout
	}
	if r.Resolution != nil {
		if !slices.Contains(Resolutions, *r.Resolution) {
			return nb, httpapi.Invalid("%sresolution must be one of 1920x1080, 1280x720, 1080x1920, 720x1280, 1080x1080, 720x720", prefix)
		}
		nb.Resolution = *r.Resolution
	}
	if r.Background != nil {
		u, err := url.Parse(*r.Background)
		if len(*r.Background) > maxBackgroundURL || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nb, httpapi.Invalid("%sbackground must be an http or https URL of an image (at most %d characters, no credentials)", prefix, maxBackgroundURL)
		}
	}
	if err := checkPassthrough(r.Passthrough); err != nil {
		return nb, httpapi.Invalid("%spassthrough must be at most %d characters", prefix, maxPassthrough)
	}
	return nb, nil
}

// createBroadcast answers POST /video/v1/spaces/{id}/broadcasts: 201 with an idle broadcast.
func (a *API) createBroadcast(c echo.Context) error {
	ctx, env := c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID
	// The space's 404 comes before any complaint about the body.
	if _, err := a.Store.Get(ctx, env, c.Param("id")); err != nil {
		return mapErr(err)
	}
	var req broadcastRequest
	if err := httpapi.Bind(c, &req); err != nil {
		return err
	}
	nb, err := req.validate("")
	if err != nil {
		return err
	}
	b, err := a.Store.CreateBroadcast(ctx, env, c.Param("id"), nb)
	if err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return httpapi.Data(c, http.StatusCreated, resource.NewBroadcast(b))
}

func (a *API) getBroadcast(c echo.Context) error {
	_, b, err := a.Store.GetBroadcast(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id"), c.Param("bid"))
	if err != nil {
		return mapErr(err)
	}
	return httpapi.Data(c, http.StatusOK, resource.NewBroadcast(b))
}

func (a *API) deleteBroadcast(c echo.Context) error {
	if err := a.Store.DeleteBroadcast(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id"), c.Param("bid")); err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return c.NoContent(http.StatusNoContent)
}

// startBroadcast: POST .../start (409 unless the space is active); the broadcast goes active.
func (a *API) startBroadcast(c echo.Context) error {
	_, changed, err := a.Store.StartBroadcast(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id"), c.Param("bid"))
	if err != nil {
		return mapErr(err)
	}
	if changed {
		a.Relay.Notify()
	}
	return httpapi.Empty(c)
}

// stopBroadcast: POST .../stop; the broadcast goes idle and the live stream is completed
// (livestream consumes space.broadcast.idle).
func (a *API) stopBroadcast(c echo.Context) error {
	_, changed, err := a.Store.StopBroadcast(c.Request().Context(), auth.PrincipalFrom(c).EnvironmentID, c.Param("id"), c.Param("bid"))
	if err != nil {
		return mapErr(err)
	}
	if changed {
		a.Relay.Notify()
	}
	return httpapi.Empty(c)
}
