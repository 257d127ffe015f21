// Package api serves the live stream and asset REST routes.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// Notifier is woken after a transaction that wrote events.
type Notifier interface{ Notify() }

// Ender ends a live stream's current recording at once (kicking its publisher).
type Ender interface {
	EndNow(ctx context.Context, liveStreamID string) error
}

// Recordings removes an asset's files.
type Recordings interface {
	Remove(assetID string) error
}

// Renditions removes a static rendition's file and wakes the worker that makes them.
type Renditions interface {
	Remove(assetID, id string) error
	Wake()
}

// API holds the handlers' dependencies.
type API struct {
	Store      *store.Store
	Relay      Notifier
	Sessions   Ender
	Recordings Recordings
	Renditions Renditions
	Guard      TargetGuard // simulcast target URLs
}

// Bounds and defaults of live stream settings (API.md).
const (
	DefaultReconnectWindow = 60
	MaxReconnectWindow     = 1800
	DefaultMaxContinuous   = 43200
	MinMaxContinuous       = 60
	maxPassthrough         = 255
)

// Register mounts /video/v1/live-streams and /video/v1/assets behind authn.
func (a *API) Register(e *echo.Echo, authn *auth.Verifier) {
	r, w := auth.Require(auth.VideoRead), auth.Require(auth.VideoWrite)
	g := e.Group("/video/v1/live-streams", authn.Middleware())
	g.POST("", a.create, w)
	g.GET("", a.list, r)
	g.GET("/:id", a.get, r)
	g.PATCH("/:id", a.update, w)
	g.DELETE("/:id", a.delete, w)
	g.POST("/:id/reset-stream-key", a.resetKey, w)
	g.PUT("/:id/enable", a.enable, w)
	g.PUT("/:id/disable", a.disable, w)
	g.PUT("/:id/complete", a.complete, w)
	g.POST("/:id/playback-ids", a.addPlaybackID, w)
	g.GET("/:id/playback-ids/:pid", a.getPlaybackID, r)
	g.DELETE("/:id/playback-ids/:pid", a.deletePlaybackID, w)
	g.POST("/:id/simulcast-targets", a.createTarget, w)
	g.GET("/:id/simulcast-targets/:tid", a.getTarget, r)
	g.DELETE("/:id/simulcast-targets/:tid", a.deleteTarget, w)
	as := e.Group("/video/v1/assets", authn.Middleware())
	as.POST("", createAssetUnsupported, w)
	as.GET("", a.listAssets, r)
	as.GET("/:id", a.getAsset, r)
	as.DELETE("/:id", a.deleteAsset, w)
	as.POST("/:id/playback-ids", a.addAssetPlaybackID, w)
	as.GET("/:id/playback-ids/:pid", a.getAssetPlaybackID, r)
	as.DELETE("/:id/playback-ids/:pid", a.deleteAssetPlaybackID, w)
	as.POST("/:id/static-renditions", a.createRendition, w)
	as.DELETE("/:id/static-renditions/:rid", a.deleteRendition, w)
	as.PUT("/:id/mp4-support", a.setMP4Support, w)
	g.PUT("/:id/new-asset-settings/static-renditions", a.setNewAssetRenditions, w)
	g.DELETE("/:id/new-asset-settings/static-renditions", a.deleteNewAssetRenditions, w)
	e.GET("/video/v1/playback-ids/:id", a.lookupPlaybackID, authn.Middleware(), r)

	// Mux API calls for features Spacecast does not have: a 400 that names the feature, so a
	// backend written for Mux learns what is missing instead of seeing "no such route".
	for _, u := range []struct {
		group         *echo.Group
		path, feature string
	}{
		{g, "/:id/embedded-subtitles", "embedded subtitles"},
		{g, "/:id/generated-subtitles", "generated subtitles"},
		{as, "/:id/master-access", "master access"},
		{as, "/:id/tracks", "adding or removing asset tracks"},
		{as, "/:id/tracks/*", "adding or removing asset tracks"},
		{as, "/:id/input-info", "asset input info"},
		{as, "/:id/shots", "shot detection"},
		{as, "/:id/thumbnail-time", "thumbnail times"},
	} {
		u.group.Any(u.path, notImplemented(u.feature))
	}
	as.PATCH("/:id", notImplemented("updating an asset (passthrough, meta)"))
	for path, feature := range map[string]string{
		"/video/v1/uploads":                    "direct uploads",
		"/video/v1/playback-restrictions":      "playback restrictions",
		"/video/v1/transcription-vocabularies": "transcription vocabularies",
		"/video/v1/drm-configurations":         "DRM",
		"/video/v1/delivery-usage":             "delivery usage reports",
		"/data/v1":                             "Mux Data (video analytics; read the Kafka topics instead)",
	} {
		e.Any(path, notImplemented(feature), authn.Middleware())
		e.Any(path+"/*", notImplemented(feature), authn.Middleware())
	}
}

// notImplemented answers a Mux API call for a feature Spacecast does not implement.
func notImplemented(feature string) echo.HandlerFunc {
	return func(echo.Context) error {
		return httpapi.Invalid("%s: Spacecast does not implement this Mux feature", feature)
	}
}

// createAssetUnsupported answers Mux's assets.create: Spacecast makes assets only by recording
// live streams.
func createAssetUnsupported(echo.Context) error {
	return httpapi.Invalid("creating assets from a URL or a direct upload is not supported: assets are the recordings of live streams")
}

// mapErr is the one place store errors become API errors.
func mapErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return httpapi.NotFound("live stream not found")
	case errors.Is(err, store.ErrAssetNotFound):
		return httpapi.NotFound("asset not found")
	case errors.Is(err, store.ErrPlaybackID):
		return httpapi.NotFound("playback id not found")
	case errors.Is(err, store.ErrTargetNotFound):
		return httpapi.NotFound("simulcast target not found")
	case errors.Is(err, store.ErrRenditionNotFound):
		return httpapi.NotFound("static rendition not found")
	case errors.Is(err, store.ErrRenditionExists):
		return httpapi.Invalid("the asset already has a static rendition of that resolution")
	case errors.Is(err, store.ErrMP4SupportConflict):
		return httpapi.Invalid("an asset's static renditions come from mp4_support or from the static renditions API, not both: turn the other off first")
	case errors.Is(err, store.ErrNotIdle):
		return httpapi.Invalid("simulcast targets can only be created or deleted while the live stream is idle (no encoder connected, no recording in progress)")
	}
	return err
}

func env(c echo.Context) string { return auth.PrincipalFrom(c).EnvironmentID }

func checkPolicy(field, p string) error {
	if p != store.PolicyPublic && p != store.PolicySigned {
		return httpapi.Invalid(`%s: want "public" or "signed", got %q`, field, p)
	}
	return nil
}

// policies reads playback_policy (a string or an array) and playback_policies (an array).
func policies(prefix string, one, many json.RawMessage) ([]string, error) {
	var out []string
	if len(one) > 0 && !bytes.Equal(one, []byte("null")) {
		var s string
		if err := json.Unmarshal(one, &s); err == nil {
			out = append(out, s)
		} else if err := json.Unmarshal(one, &out); err != nil {
			return nil, httpapi.Invalid("%splayback_policy: want a string or an array of strings", prefix)
		}
	}
	if len(many) > 0 && !bytes.Equal(many, []byte("null")) {
		var more []string
		if err := json.Unmarshal(many, &more); err != nil {
			return nil, httpapi.Invalid("%splayback_policies: want an array of strings", prefix)
		}
		out = append(out, more...)
	}
	for _, p := range out {
		if err := checkPolicy(prefix+"playback_policy", p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func checkSettings(rw, mcd *int, lm, pt *string) error {
	if rw != nil && (*rw < 0 || *rw > MaxReconnectWindow) {
		return httpapi.Invalid("reconnect_window must be between 0 and %d seconds", MaxReconnectWindow)
	}
	if mcd != nil && (*mcd < MinMaxContinuous || *mcd > DefaultMaxContinuous) {
		return httpapi.Invalid("max_continuous_duration must be between %d and %d seconds", MinMaxContinuous, DefaultMaxContinuous)
	}
	if lm != nil && *lm != "standard" && *lm != "reduced" && *lm != "low" {
		return httpapi.Invalid(`latency_mode: want "standard", "reduced" or "low", got %q`, *lm)
	}
	if pt != nil && utf8.RuneCountInString(*pt) > maxPassthrough {
		return httpapi.Invalid("passthrough must be at most %d characters", maxPassthrough)
	}
	return nil
}

// settings are what create and PATCH both accept. The json.RawMessage fields are Mux features
// Spacecast does not implement: present, they are refused by name (see unsupported).
type settings struct {
	ReconnectWindow       *int            `json:"reconnect_window"`
	LatencyMode           *string         `json:"latency_mode"`
	MaxContinuousDuration *int            `json:"max_continuous_duration"`
	Passthrough           *string         `json:"passthrough"`
	NewAssetSettings      json.RawMessage `json:"new_asset_settings"`
	Meta                  json.RawMessage `json:"meta"`
	AudioOnly             *bool           `json:"audio_only"`
	ReducedLatency        *bool           `json:"reduced_latency"`
	LowLatency            *bool           `json:"low_latency"`

	ReconnectSlateURL          json.RawMessage `json:"reconnect_slate_url"`
	UseSlateForStandardLatency json.RawMessage `json:"use_slate_for_standard_latency"`
	EmbeddedSubtitles          json.RawMessage `json:"embedded_subtitles"`
	GeneratedSubtitles         json.RawMessage `json:"generated_subtitles"`
	SimulcastTargets           json.RawMessage `json:"simulcast_targets"`
	AdvancedPlaybackPolicies   json.RawMessage `json:"advanced_playback_policies"`
	DRMConfigurationID         json.RawMessage `json:"drm_configuration_id"`
}

// read checks the settings and returns the latency mode the latency fields ask for (nil:
// none), new_asset_settings and meta.
func (s settings) read() (*string, *store.AssetSettings, *store.Meta, error) {
	if err := checkUnsupported("", unsupported, s.unsupportedSet()); err != nil {
		return nil, nil, nil, err
	}
	if err := checkSettings(s.ReconnectWindow, s.MaxContinuousDuration, s.LatencyMode, s.Passthrough); err != nil {
		return nil, nil, nil, err
	}
	lm := s.LatencyMode
	for _, alias := range []struct {
		name, mode string
		on         *bool
	}{{"reduced_latency", "reduced", s.ReducedLatency}, {"low_latency", "low", s.LowLatency}} {
		if alias.on == nil || !*alias.on {
			continue
		}
		if lm != nil && *lm != alias.mode {
			return nil, nil, nil, httpapi.Invalid("%s: true asks for latency_mode %q, which contradicts latency_mode %q", alias.name, alias.mode, *lm)
		}
		m := alias.mode
		lm = &m
	}
	nas, err := readAssetSettings(s.NewAssetSettings)
	if err != nil {
		return nil, nil, nil, err
	}
	meta, err := readMeta("meta", s.Meta, false)
	if err != nil {
		return nil, nil, nil, err
	}
	return lm, nas, meta, nil
}

func (a *API) create(c echo.Context) error {
	var req struct {
		settings
		PlaybackPolicy   json.RawMessage `json:"playback_policy"`
		PlaybackPolicies json.RawMessage `json:"playback_policies"`
		Test             *bool           `json:"test"`
	}
	if err := httpapi.Bind(c, &req); err != nil {
		return err
	}
	pols, err := policies("", req.PlaybackPolicy, req.PlaybackPolicies)
	if err != nil {
		return err
	}
	lm, nas, meta, err := req.settings.read()
	if err != nil {
		return err
	}
	n := store.NewLiveStream{Policies: pols, ReconnectWindow: DefaultReconnectWindow, LatencyMode: "standard",
		MaxContinuousDuration: DefaultMaxContinuous, Passthrough: req.Passthrough, NewAssetSettings: nas, Meta: meta}
	if req.ReconnectWindow != nil {
		n.ReconnectWindow = *req.ReconnectWindow
	}
	if lm != nil {
		n.LatencyMode = *lm
	}
	if req.MaxContinuousDuration != nil {
		n.MaxContinuousDuration = *req.MaxContinuousDuration
	}
	if req.Test != nil {
		n.Test = *req.Test
	}
	if req.AudioOnly != nil {
		n.AudioOnly = *req.AudioOnly
	}
	if n.SimulcastTargets, err = a.readTargets(req.SimulcastTargets); err != nil {
		return err
	}
	ls, err := a.Store.Create(c.Request().Context(), env(c), n)
	if err != nil {
		return err
	}
	a.Relay.Notify()
	return httpapi.Data(c, http.StatusCreated, ls.Resource())
}

// unsupportedSet is the unsupported settings the request set, by name.
func (s settings) unsupportedSet() map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for k, v := range map[string]json.RawMessage{
		"reconnect_slate_url": s.ReconnectSlateURL, "use_slate_for_standard_latency": s.UseSlateForStandardLatency,
		"embedded_subtitles": s.EmbeddedSubtitles, "generated_subtitles": s.GeneratedSubtitles,
		"simulcast_targets": s.SimulcastTargets, "advanced_playback_policies": s.AdvancedPlaybackPolicies,
		"drm_configuration_id": s.DRMConfigurationID,
	} {
		if len(v) > 0 {
			out[k] = v
		}
	}
	return out
}

func (a *API) list(c echo.Context) error {
	pg, err := httpapi.Paging(c)
	if err != nil {
		return err
	}
	status := c.QueryParam("status")
	if status != "" && status != store.StatusIdle && status != store.StatusActive && status != store.StatusDisabled {
		return httpapi.Invalid(`status: want "idle", "active" or "disabled", got %q`, status)
	}
	rows, next, err := a.Store.List(c.Request().Context(), env(c), status, c.QueryParam("stream_key"), pg)
	if err != nil {
		return err
	}
	out := make([]store.LiveStreamResource, len(rows))
	for i, ls := range rows {
		out[i] = ls.Resource()
	}
	return httpapi.List(c, out, next)
}

func (a *API) get(c echo.Context) error {
	ls, err := a.Store.Get(c.Request().Context(), env(c), c.Param("id"))
	if err != nil {
		return mapErr(err)
	}
	return httpapi.Data(c, http.StatusOK, ls.Resource())
}

func (a *API) update(c echo.Context) error {
	var req settings
	if err := httpapi.Bind(c, &req); err != nil {
		return err
	}
	if len(req.SimulcastTargets) > 0 && string(req.SimulcastTargets) != "null" {
		return httpapi.Invalid("simulcast_targets: add or remove targets with POST and DELETE /video/v1/live-streams/{id}/simulcast-targets")
	}
	lm, nas, meta, err := req.read()
	if err != nil {
		return err
	}
	ls, err := a.Store.Update(c.Request().Context(), env(c), c.Param("id"), store.Patch{
		ReconnectWindow: req.ReconnectWindow, LatencyMode: lm, MaxContinuousDuration: req.MaxContinuousDuration,
		Passthrough: req.Passthrough, NewAssetSettings: nas, AudioOnly: req.AudioOnly, Meta: meta})
	if err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return httpapi.Data(c, http.StatusOK, ls.Resource())
}

func (a *API) delete(c echo.Context) error {
	ctx := c.Request().Context()
	if _, err := a.Store.Get(ctx, env(c), c.Param("id")); err != nil {
		return mapErr(err)
	}
	// End the recording, then delete; a publisher that got in between has its new recording
	// ended the same way.
	for try := 0; ; try++ {
		if err := a.Sessions.EndNow(ctx, c.Param("id")); err != nil {
			return mapErr(err)
		}
		_, err := a.Store.Delete(ctx, env(c), c.Param("id"))
		if errors.Is(err, store.ErrRecordingActive) {
			if try < 3 {
				continue
			}
			return httpapi.Conflict("an encoder keeps reconnecting to the live stream; disable it first")
		}
		if err != nil {
			return mapErr(err)
		}
		break
	}
	a.Relay.Notify()
	return c.NoContent(http.StatusNoContent)
}

func (a *API) resetKey(c echo.Context) error {
	ls, err := a.Store.ResetStreamKey(c.Request().Context(), env(c), c.Param("id"))
	if err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return httpapi.Data(c, http.StatusCreated, ls.Resource())
}

func (a *API) enable(c echo.Context) error  { return a.setEnabled(c, true) }
func (a *API) disable(c echo.Context) error { return a.setEnabled(c, false) }

func (a *API) setEnabled(c echo.Context, on bool) error {
	ctx := c.Request().Context()
	if _, err := a.Store.SetEnabled(ctx, env(c), c.Param("id"), on); err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	if !on {
		if err := a.Sessions.EndNow(ctx, c.Param("id")); err != nil {
			return mapErr(err)
		}
	}
	return httpapi.Empty(c)
}

// complete ends the current recording without waiting for reconnect_window.
func (a *API) complete(c echo.Context) error {
	ctx := c.Request().Context()
	if _, err := a.Store.Get(ctx, env(c), c.Param("id")); err != nil {
		return mapErr(err)
	}
	if err := a.Sessions.EndNow(ctx, c.Param("id")); err != nil {
		return mapErr(err)
	}
	return httpapi.Empty(c)
}

// playbackIDRequest reads the body of a playback id creation: {policy}.
func playbackIDRequest(c echo.Context) (string, error) {
	var req struct {
		Policy             *string         `json:"policy"`
		DRMConfigurationID json.RawMessage `json:"drm_configuration_id"`
	}
	if err := httpapi.Bind(c, &req); err != nil {
		return "", err
	}
	if len(req.DRMConfigurationID) > 0 && string(req.DRMConfigurationID) != "null" {
		return "", httpapi.Invalid("drm_configuration_id: Spacecast does not implement DRM")
	}
	if req.Policy == nil {
		return "", httpapi.Invalid("policy is required")
	}
	if *req.Policy == "drm" {
		return "", httpapi.Invalid(`policy: Spacecast does not implement DRM (want "public" or "signed")`)
	}
	return *req.Policy, checkPolicy("policy", *req.Policy)
}

func (a *API) addPlaybackID(c echo.Context) error {
	policy, err := playbackIDRequest(c)
	if err != nil {
		return err
	}
	p, err := a.Store.AddPlaybackID(c.Request().Context(), env(c), c.Param("id"), policy)
	if err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return httpapi.Data(c, http.StatusCreated, p)
}

func (a *API) getPlaybackID(c echo.Context) error {
	p, err := a.Store.GetPlaybackID(c.Request().Context(), env(c), c.Param("id"), c.Param("pid"))
	if err != nil {
		return mapErr(err)
	}
	return httpapi.Data(c, http.StatusOK, p)
}

func (a *API) deletePlaybackID(c echo.Context) error {
	if err := a.Store.DeletePlaybackID(c.Request().Context(), env(c), c.Param("id"), c.Param("pid")); err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return c.NoContent(http.StatusNoContent)
}

func (a *API) listAssets(c echo.Context) error {
	pg, err := httpapi.Paging(c)
	if err != nil {
		return err
	}
	rows, next, err := a.Store.ListAssets(c.Request().Context(), env(c), c.QueryParam("live_stream_id"), pg)
	if err != nil {
		return err
	}
	out := make([]store.AssetResource, len(rows))
	for i, as := range rows {
		out[i] = as.Resource()
	}
	return httpapi.List(c, out, next)
}

func (a *API) getAsset(c echo.Context) error {
	as, err := a.Store.GetAsset(c.Request().Context(), env(c), c.Param("id"))
	if err != nil {
		return mapErr(err)
	}
	return httpapi.Data(c, http.StatusOK, as.Resource())
}

func (a *API) deleteAsset(c echo.Context) error {
	ctx := c.Request().Context()
	as, err := a.Store.GetAsset(ctx, env(c), c.Param("id"))
	if err != nil {
		return mapErr(err)
	}
	if as.Status == store.AssetPreparing {
		return httpapi.Conflict("the asset is still being recorded; complete or disable its live stream first")
	}
	if _, err := a.Store.DeleteAsset(ctx, env(c), as.ID); err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	if a.Recordings != nil {
		if err := a.Recordings.Remove(as.ID); err != nil {
			return fmt.Errorf("removing the recording of %s: %w", as.ID, err)
		}
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *API) addAssetPlaybackID(c echo.Context) error {
	policy, err := playbackIDRequest(c)
	if err != nil {
		return err
	}
	p, err := a.Store.AddAssetPlaybackID(c.Request().Context(), env(c), c.Param("id"), policy)
	if err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return httpapi.Data(c, http.StatusCreated, p)
}

func (a *API) getAssetPlaybackID(c echo.Context) error {
	p, err := a.Store.GetAssetPlaybackID(c.Request().Context(), env(c), c.Param("id"), c.Param("pid"))
	if err != nil {
		return mapErr(err)
	}
	return httpapi.Data(c, http.StatusOK, p)
}

func (a *API) deleteAssetPlaybackID(c echo.Context) error {
	if err := a.Store.DeleteAssetPlaybackID(c.Request().Context(), env(c), c.Param("id"), c.Param("pid")); err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return c.NoContent(http.StatusNoContent)
}

// lookupPlaybackID answers what a playback id belongs to: {id, policy, object: {type, id}}.
func (a *API) lookupPlaybackID(c echo.Context) error {
	p, err := a.Store.LookupPlaybackID(c.Request().Context(), env(c), c.Param("id"))
	if err != nil {
		return mapErr(err)
	}
	return httpapi.Data(c, http.StatusOK, p)
}
