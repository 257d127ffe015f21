package api

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// createRendition is POST /video/v1/assets/{id}/static-renditions {resolution, passthrough?}.
func (a *API) createRendition(c echo.Context) error {
	var raw json.RawMessage
	if err := httpapi.Bind(c, &raw); err != nil {
		return err
	}
	req, err := readRenditionRequest("static rendition", raw)
	if err != nil {
		return err
	}
	r, err := a.Store.CreateStaticRendition(c.Request().Context(), env(c), c.Param("id"), req)
	if err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	a.Renditions.Wake()
	return httpapi.Data(c, http.StatusCreated, r.Resource())
}

// deleteRendition is DELETE /video/v1/assets/{id}/static-renditions/{rid}.
func (a *API) deleteRendition(c echo.Context) error {
	r, err := a.Store.DeleteStaticRendition(c.Request().Context(), env(c), c.Param("id"), c.Param("rid"))
	if err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	if err := a.Renditions.Remove(r.AssetID, r.ID); err != nil {
		return fmt.Errorf("removing static rendition %s: %w", r.ID, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// setMP4Support is Mux's deprecated PUT /video/v1/assets/{id}/mp4-support {mp4_support}.
func (a *API) setMP4Support(c echo.Context) error {
	var req struct {
		MP4Support json.RawMessage `json:"mp4_support"`
	}
	if err := httpapi.Bind(c, &req); err != nil {
		return err
	}
	if len(req.MP4Support) == 0 {
		return httpapi.Invalid("mp4_support is required")
	}
	v, err := readMP4Support("mp4_support", req.MP4Support)
	if err != nil {
		return err
	}
	if v == "" {
		v = store.MP4None
	}
	as, removed, err := a.Store.SetMP4Support(c.Request().Context(), env(c), c.Param("id"), v)
	if err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	a.Renditions.Wake()
	for _, r := range removed {
		if err := a.Renditions.Remove(r.AssetID, r.ID); err != nil {
			return fmt.Errorf("removing static rendition %s: %w", r.ID, err)
		}
	}
	return httpapi.Data(c, http.StatusOK, as.Resource())
}

// setNewAssetRenditions is PUT /video/v1/live-streams/{id}/new-asset-settings/static-renditions
// {static_renditions: [...]}: the renditions the stream's next recordings get.
func (a *API) setNewAssetRenditions(c echo.Context) error {
	var req struct {
		StaticRenditions json.RawMessage `json:"static_renditions"`
	}
	if err := httpapi.Bind(c, &req); err != nil {
		return err
	}
	rs, err := readRenditions("static_renditions", req.StaticRenditions)
	if err != nil {
		return err
	}
	return a.updateRenditionSettings(c, rs, http.StatusOK)
}

// deleteNewAssetRenditions is DELETE .../new-asset-settings/static-renditions.
func (a *API) deleteNewAssetRenditions(c echo.Context) error {
	return a.updateRenditionSettings(c, nil, http.StatusNoContent)
}

func (a *API) updateRenditionSettings(c echo.Context, rs []store.RenditionRequest, status int) error {
	ctx := c.Request().Context()
	ls, err := a.Store.Get(ctx, env(c), c.Param("id"))
	if err != nil {
		return mapErr(err)
	}
	nas := store.AssetSettings{PlaybackPolicies: []string{}}
	if ls.NewAssetSettings != nil {
		nas = *ls.NewAssetSettings
	}
	if len(rs) > 0 && nas.MP4Support != "" {
		return httpapi.Invalid("new_asset_settings.mp4_support is set: mp4_support and static_renditions cannot both be set")
	}
	nas.StaticRenditions = rs
	if ls, err = a.Store.Update(ctx, env(c), ls.ID, store.Patch{NewAssetSettings: &nas}); err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	if status == http.StatusNoContent {
		return c.NoContent(status)
	}
	return httpapi.Data(c, status, ls.Resource())
}
