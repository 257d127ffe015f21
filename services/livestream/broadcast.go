package livestream

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// ErrNoActiveBroadcast is returned by ingest lookups for a broadcast that is not active (or
// not yet seen active here: the SFU retries).
var ErrNoActiveBroadcast = errors.New("no active broadcast with that id")

// BroadcastIngest is where the SFU publishes an active broadcast: RTMP to
// RTMPURL + "/" + StreamKey. It is served only to other services (never in events).
type BroadcastIngest struct {
	BroadcastID   string  `json:"broadcast_id"`
	SpaceID       string  `json:"space_id"`
	EnvironmentID string  `json:"environment_id"`
	LiveStreamID  string  `json:"live_stream_id"`
	Layout        string  `json:"layout"`
	Resolution    string  `json:"resolution"`
	Background    *string `json:"background,omitempty"`
	RTMPURL       string  `json:"rtmp_url"`
	StreamKey     string  `json:"stream_key"`
}

func defaultPublishURL(a net.Addr) string {
	port := "1935"
	if ta, ok := a.(*net.TCPAddr); ok {
		port = fmt.Sprint(ta.Port)
	}
	return "rtmp://127.0.0.1:" + port + "/app"
}

// BroadcastIngest returns the RTMP target of an active broadcast, or ErrNoActiveBroadcast.
func (s *Service) BroadcastIngest(ctx context.Context, broadcastID string) (BroadcastIngest, error) {
	b, ls, err := s.store.ActiveBroadcastTarget(ctx, broadcastID)
	if errors.Is(err, store.ErrBroadcastNotActive) {
		return BroadcastIngest{}, ErrNoActiveBroadcast
	}
	if err != nil {
		return BroadcastIngest{}, err
	}
	return BroadcastIngest{BroadcastID: b.BroadcastID, SpaceID: b.SpaceID, EnvironmentID: b.EnvironmentID, LiveStreamID: ls.ID,
		Layout: b.Layout, Resolution: b.Resolution, Background: b.Background, RTMPURL: s.cfg.RTMPPublishURL, StreamKey: ls.StreamKey}, nil
}

// internalIngest serves GET /internal/v1/broadcasts/{id}/ingest (X-Spacecast-Internal).
func (s *Service) internalIngest(c echo.Context) error {
	got := c.Request().Header.Get(auth.InternalAuthHeader)
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.InternalSecret)) != 1 {
		return httpapi.Unauthorized("internal API: missing or wrong " + auth.InternalAuthHeader + " header")
	}
	in, err := s.BroadcastIngest(c.Request().Context(), c.Param("id"))
	if errors.Is(err, ErrNoActiveBroadcast) {
		return httpapi.NotFound("no active broadcast with that id")
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return httpapi.Data(c, http.StatusOK, in)
}

// broadcastData is the part of a space.broadcast.* event's data this service uses.
type broadcastData struct {
	ID           string  `json:"id"`
	SpaceID      string  `json:"space_id"`
	LiveStreamID string  `json:"live_stream_id"`
	Layout       string  `json:"layout"`
	Resolution   string  `json:"resolution"`
	Background   *string `json:"background"`
}

// handleSpaceEvent applies one spacecast.spaces event: space.broadcast.active records the
// broadcast active, .idle records it idle and completes its live stream (the current
// recording ends at once, as PUT .../complete), .deleted forgets it. Malformed events are
// skipped; store and completion errors are returned so the consumer retries.
func (s *Service) handleSpaceEvent(ctx context.Context, m kafkabus.Message) error {
	ev, err := events.Parse(m.Value)
	if err != nil {
		s.log.Error("skipping malformed event", "err", err, "topic", m.Topic, "offset", m.Offset)
		return nil
	}
	switch ev.Type {
	case "space.broadcast.active", "space.broadcast.idle", "space.broadcast.deleted":
	default:
		return nil
	}
	var d broadcastData
	if err := json.Unmarshal(ev.Data, &d); err != nil || d.ID == "" || d.SpaceID == "" || d.LiveStreamID == "" || ev.Environment == "" {
		s.log.Error("skipping broadcast event without id, space_id, live_stream_id or environment", "event_id", ev.ID, "type", ev.Type)
		return nil
	}
	if ev.Type == "space.broadcast.deleted" {
		return s.store.DeleteBroadcastTarget(ctx, d.ID)
	}
	// A broadcast names a live stream of its own environment (spaces-api checks it); one of
	// another environment, or a deleted one, is not ours to touch.
	if _, err := s.store.Get(ctx, ev.Environment, d.LiveStreamID); errors.Is(err, store.ErrNotFound) {
		s.log.Warn("broadcast to an unknown live stream", "broadcast_id", d.ID, "live_stream_id", d.LiveStreamID)
		return nil
	} else if err != nil {
		return err
	}
	active := ev.Type == "space.broadcast.active"
	if err := s.store.PutBroadcastTarget(ctx, store.BroadcastTarget{BroadcastID: d.ID, SpaceID: d.SpaceID, EnvironmentID: ev.Environment,
		LiveStreamID: d.LiveStreamID, Active: active, Layout: d.Layout, Resolution: d.Resolution, Background: d.Background}); err != nil {
		return err
	}
	if active {
		return nil
	}
	if err := s.sess.EndNow(ctx, d.LiveStreamID); err != nil {
		return fmt.Errorf("completing live stream %s after broadcast %s: %w", d.LiveStreamID, d.ID, err)
	}
	return nil
}

// HTTPIngestLookup reads broadcast ingest targets from a livestream service's
// /internal/v1/broadcasts/{id}/ingest (a standalone SFU).
type HTTPIngestLookup struct {
	base, secret string
	client       *http.Client
}

// NewHTTPIngestLookup talks to the livestream service at baseURL with the internal secret.
func NewHTTPIngestLookup(baseURL, internalSecret string) (*HTTPIngestLookup, error) {
	if u, err := url.Parse(baseURL); err != nil || baseURL == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("livestream: bad URL %q", baseURL)
	}
	if internalSecret == "" {
		return nil, errors.New("livestream: the internal secret is required")
	}
	return &HTTPIngestLookup{base: strings.TrimRight(baseURL, "/"), secret: internalSecret, client: &http.Client{Timeout: 3 * time.Second}}, nil
}

// BroadcastIngest returns the RTMP target of an active broadcast, or ErrNoActiveBroadcast.
func (h *HTTPIngestLookup) BroadcastIngest(ctx context.Context, broadcastID string) (BroadcastIngest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/internal/v1/broadcasts/"+url.PathEscape(broadcastID)+"/ingest", nil)
	if err != nil {
		return BroadcastIngest{}, err
	}
	req.Header.Set(auth.InternalAuthHeader, h.secret)
	res, err := h.client.Do(req)
	if err != nil {
		return BroadcastIngest{}, err
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
		var body struct {
			Data BroadcastIngest `json:"data"`
		}
		err := json.NewDecoder(res.Body).Decode(&body)
		return body.Data, err
	case http.StatusNotFound:
		return BroadcastIngest{}, ErrNoActiveBroadcast
	}
	return BroadcastIngest{}, fmt.Errorf("livestream ingest lookup: status %d", res.StatusCode)
}
