// Package spacesapi is the spaces-api service's wiring: the spaces REST API, the space status
// driven by the SFU's participant events, and a lookup other services use to check spaces.
package spacesapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/services/spaces-api/internal/api"
	"github.com/spacecast/spacecast/services/spaces-api/internal/resource"
	"github.com/spacecast/spacecast/services/spaces-api/internal/store"
)

// ErrSpaceNotFound is returned by lookups for a missing space.
var ErrSpaceNotFound = errors.New("space not found")

// Config are the service's own settings.
type Config struct {
	InternalSecret string // SPACECAST_INTERNAL_SECRET: enables /internal/v1/spaces for the SFU
	ConsumerGroup  string // SPACECAST_SPACES_CONSUMER_GROUP
}

// LoadConfig reads the settings.
func LoadConfig(r *envconfig.Reader) Config {
	return Config{
		InternalSecret: r.String("SPACECAST_INTERNAL_SECRET", ""),
		ConsumerGroup:  r.String("SPACECAST_SPACES_CONSUMER_GROUP", "spaces-api"),
	}
}

// Deps are the clients the service uses.
type Deps struct {
	Logger    *slog.Logger
	DB        *sqldb.DB
	Publisher outbox.Publisher
	Brokers   []string
	Auth      *auth.Verifier
}

// Service is a running spaces-api.
type Service struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	relay *outbox.Relay
	cons  *kafkabus.Consumer
	tail  *kafkabus.Tail
	api   *api.API
	authn *auth.Verifier
}

// New migrates the database and builds the service.
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	if d.Logger == nil || d.DB == nil || d.Publisher == nil || d.Auth == nil || len(d.Brokers) == 0 {
		return nil, errors.New("spaces-api: Logger, DB, Publisher, Auth and Brokers are required")
	}
	if cfg.ConsumerGroup == "" {
		cfg.ConsumerGroup = "spaces-api"
	}
	log := d.Logger.With("service", "spaces-api")
	st, err := store.Open(ctx, d.DB, resource.Renderers)
	if err != nil {
		return nil, fmt.Errorf("spaces-api: %w", err)
	}
	relay, err := outbox.NewRelay(outbox.RelayConfig{DB: d.DB, Publisher: d.Publisher, Logger: log})
	if err != nil {
		return nil, err
	}
	cons, err := kafkabus.NewConsumer(kafkabus.ConsumerConfig{Brokers: d.Brokers, GroupID: cfg.ConsumerGroup,
		Topics: []string{events.TopicRTC, events.TopicLivestreams}, Logger: log})
	if err != nil {
		return nil, err
	}
	// Every replica tails spacecast.spaces to drop the cached rows another replica changed.
	tail, err := kafkabus.NewTail(kafkabus.TailConfig{Brokers: d.Brokers, Topics: []string{events.TopicSpaces}, Logger: log})
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, log: log, store: st, relay: relay, cons: cons, tail: tail, authn: d.Auth,
		api: &api.API{Store: st, Relay: relay}}, nil
}

// forget drops what is cached of the space an event of spacecast.spaces is about: the
// record key, which is the space id for space.* and space.broadcast.* events alike (a
// broadcast event's subject is the broadcast). A space.created event needs nothing: no replica
// can have cached a space before it existed (the broadcasts created with it are in its
// transaction).
func (s *Service) forget(m kafkabus.Message) {
	if ev, err := events.Parse(m.Value); err == nil && ev.Type == "space.created" {
		return
	}
	s.store.Forget(string(m.Key))
}

// Register mounts the REST routes, and /internal/v1/spaces when an internal secret is set.
func (s *Service) Register(e *echo.Echo) {
	s.api.Register(e, s.authn)
	if s.cfg.InternalSecret != "" {
		e.GET("/internal/v1/spaces/:id", s.internalSpace)
		e.GET("/internal/v1/spaces/:id/broadcasts", s.internalBroadcasts)
		e.GET("/internal/v1/spaces", s.internalActiveSpaces)
	}
}

// Ping checks the database (readiness).
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// Run publishes the outbox and consumes participant events until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.relay.Run(ctx) }()
	go func() { errc <- s.cons.Run(ctx, s.handle) }()
	go func() {
		if err := s.tail.Run(ctx, s.forget); err != nil {
			s.log.Error("spaces tail stopped: cached rows expire after 30 s instead", "err", err)
		}
	}()
	go s.prune(ctx)
	err := <-errc
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}

func (s *Service) prune(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.store.PruneProcessed(ctx, 7*24*time.Hour); err != nil {
				s.log.Warn("pruning processed events failed", "err", err)
			}
		}
	}
}

// occupancyData is the part of the SFU's participant.joined, participant.left and
// space.vacated data the status needs.
type occupancyData struct {
	SpaceID           string `json:"space_id"`
	SpaceParticipants *int   `json:"space_participants"`
	SpaceSeq          *int64 `json:"space_seq"`
}

// handle applies one spacecast.rtc event. Malformed events are logged and skipped: retrying
// cannot make them valid. Store errors are returned so the consumer retries.
func (s *Service) handle(ctx context.Context, m kafkabus.Message) error {
	ev, err := events.Parse(m.Value)
	if err != nil {
		s.log.Error("skipping malformed event", "err", err, "topic", m.Topic, "offset", m.Offset)
		return nil
	}
	switch ev.Type {
	case "participant.joined", "participant.left", "space.vacated":
	case "livestream.created", "livestream.deleted":
		return s.liveStreamEvent(ctx, ev)
	default:
		return nil
	}
	var d occupancyData
	if err := json.Unmarshal(ev.Data, &d); err != nil || d.SpaceID == "" || d.SpaceParticipants == nil || d.SpaceSeq == nil ||
		*d.SpaceParticipants < 0 || *d.SpaceSeq <= 0 {
		s.log.Error("skipping rtc event without space_id, space_participants and space_seq", "event_id", ev.ID, "type", ev.Type)
		return nil
	}
	changed, err := s.store.ApplyOccupancy(ctx, ev.ID, store.Occupancy{SpaceID: d.SpaceID, Participants: *d.SpaceParticipants, Seq: *d.SpaceSeq})
	if err != nil {
		return fmt.Errorf("apply %s %s: %w", ev.Type, ev.ID, err)
	}
	if changed {
		s.relay.Notify()
	}
	return nil
}

// liveStreamEvent records which live streams exist, by environment, so that a broadcast can
// only name a live stream of its own environment. Only ids and environments are kept: live
// stream events carry no stream key, and spaces-api never needs one.
func (s *Service) liveStreamEvent(ctx context.Context, ev events.Envelope) error {
	if ev.Subject == "" || ev.Environment == "" {
		s.log.Error("skipping live stream event without subject or environment", "event_id", ev.ID, "type", ev.Type)
		return nil
	}
	var err error
	if ev.Type == "livestream.created" {
		err = s.store.LiveStreamCreated(ctx, ev.Subject, ev.Environment)
	} else {
		err = s.store.LiveStreamDeleted(ctx, ev.Subject, ev.Environment)
	}
	if err != nil {
		return fmt.Errorf("apply %s %s: %w", ev.Type, ev.ID, err)
	}
	return nil
}

// SpaceInfo is what other services need to know about a space.
type SpaceInfo struct {
	ID            string `json:"id"`
	EnvironmentID string `json:"environment_id"`
	Status        string `json:"status"`
}

// LookupSpace returns a space of any environment, or ErrSpaceNotFound.
func (s *Service) LookupSpace(ctx context.Context, id string) (SpaceInfo, error) {
	sp, err := s.store.Get(ctx, "", id)
	if errors.Is(err, store.ErrNotFound) {
		return SpaceInfo{}, ErrSpaceNotFound
	}
	if err != nil {
		return SpaceInfo{}, err
	}
	return SpaceInfo{ID: sp.ID, EnvironmentID: sp.EnvironmentID, Status: sp.Status}, nil
}

// MaxActivePage is the most spaces one ActiveSpaces call returns.
const MaxActivePage = 1000

// ActiveSpaces returns up to limit (1..MaxActivePage) active spaces of every environment with
// an id greater than after, ordered by id: the SFU reconciles their status against its
// registry of connected participants.
func (s *Service) ActiveSpaces(ctx context.Context, after string, limit int) ([]SpaceInfo, error) {
	if limit < 1 || limit > MaxActivePage {
		return nil, fmt.Errorf("%w: limit must be between 1 and %d", httpapi.ErrInvalid, MaxActivePage)
	}
	sps, err := s.store.ActiveSpaces(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]SpaceInfo, len(sps))
	for i, sp := range sps {
		out[i] = SpaceInfo{ID: sp.ID, EnvironmentID: sp.EnvironmentID, Status: sp.Status}
	}
	return out, nil
}

func (s *Service) internalAuth(c echo.Context) error {
	got := c.Request().Header.Get(auth.InternalAuthHeader)
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.InternalSecret)) != 1 {
		return httpapi.Unauthorized("internal API: missing or wrong " + auth.InternalAuthHeader + " header")
	}
	return nil
}

// internalActiveSpaces serves GET /internal/v1/spaces?status=active&after=ID&limit=N.
func (s *Service) internalActiveSpaces(c echo.Context) error {
	if err := s.internalAuth(c); err != nil {
		return err
	}
	q := c.QueryParams()
	if q.Get("status") != "active" {
		return httpapi.Invalid("status must be active")
	}
	limit := 100
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxActivePage {
			return httpapi.Invalid("limit must be between 1 and %d", MaxActivePage)
		}
		limit = n
	}
	list, err := s.ActiveSpaces(c.Request().Context(), q.Get("after"), limit)
	if err != nil {
		return err
	}
	return httpapi.Data(c, http.StatusOK, list)
}

func (s *Service) internalSpace(c echo.Context) error {
	if err := s.internalAuth(c); err != nil {
		return err
	}
	info, err := s.LookupSpace(c.Request().Context(), c.Param("id"))
	if errors.Is(err, ErrSpaceNotFound) {
		return httpapi.NotFound("space not found")
	}
	if err != nil {
		return err
	}
	return httpapi.Data(c, http.StatusOK, info)
}

// BroadcastInfo is a broadcast as the SFU needs it (the compositor's settings; the RTMP target
// and stream key come from the livestream service, never from here).
type BroadcastInfo struct {
	ID            string  `json:"id"`
	SpaceID       string  `json:"space_id"`
	EnvironmentID string  `json:"environment_id"`
	LiveStreamID  string  `json:"live_stream_id"`
	Status        string  `json:"status"`
	Layout        string  `json:"layout"`
	Resolution    string  `json:"resolution"`
	Background    *string `json:"background,omitempty"`
}

// SpaceBroadcasts returns the broadcasts of a space of any environment, or ErrSpaceNotFound:
// an SFU node that (re)starts hosting a space reads which of them is active.
func (s *Service) SpaceBroadcasts(ctx context.Context, spaceID string) ([]BroadcastInfo, error) {
	if _, err := s.store.Get(ctx, "", spaceID); errors.Is(err, store.ErrNotFound) {
		return nil, ErrSpaceNotFound
	} else if err != nil {
		return nil, err
	}
	bs, err := s.store.Broadcasts(ctx, spaceID)
	if err != nil {
		return nil, err
	}
	out := []BroadcastInfo{}
	for _, b := range bs[spaceID] {
		out = append(out, BroadcastInfo{ID: b.ID, SpaceID: b.SpaceID, EnvironmentID: b.EnvironmentID, LiveStreamID: b.LiveStreamID,
			Status: b.Status, Layout: b.Layout, Resolution: b.Resolution, Background: b.Background})
	}
	return out, nil
}

// internalBroadcasts serves GET /internal/v1/spaces/{id}/broadcasts.
func (s *Service) internalBroadcasts(c echo.Context) error {
	if err := s.internalAuth(c); err != nil {
		return err
	}
	list, err := s.SpaceBroadcasts(c.Request().Context(), c.Param("id"))
	if errors.Is(err, ErrSpaceNotFound) {
		return httpapi.NotFound("space not found")
	}
	if err != nil {
		return err
	}
	return httpapi.Data(c, http.StatusOK, list)
}

// HTTPLookup looks spaces up through a spaces-api's /internal/v1/spaces (standalone SFU).
type HTTPLookup struct {
	base, secret string
	client       *http.Client
}

// NewHTTPLookup talks to the spaces-api at baseURL with the internal secret.
func NewHTTPLookup(baseURL, internalSecret string) (*HTTPLookup, error) {
	if _, err := url.Parse(baseURL); err != nil || baseURL == "" {
		return nil, fmt.Errorf("spaces-api: bad URL %q", baseURL)
	}
	return &HTTPLookup{base: strings.TrimRight(baseURL, "/"), secret: internalSecret, client: &http.Client{Timeout: 3 * time.Second}}, nil
}

// LookupSpace returns a space, or ErrSpaceNotFound.
func (h *HTTPLookup) LookupSpace(ctx context.Context, id string) (SpaceInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/internal/v1/spaces/"+url.PathEscape(id), nil)
	if err != nil {
		return SpaceInfo{}, err
	}
	req.Header.Set(auth.InternalAuthHeader, h.secret)
	res, err := h.client.Do(req)
	if err != nil {
		return SpaceInfo{}, err
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
		var body struct {
			Data SpaceInfo `json:"data"`
		}
		err := json.NewDecoder(res.Body).Decode(&body)
		return body.Data, err
	case http.StatusNotFound:
		return SpaceInfo{}, ErrSpaceNotFound
	}
	return SpaceInfo{}, fmt.Errorf("spaces-api lookup: status %d", res.StatusCode)
}
