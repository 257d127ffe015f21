package broadcast

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/services/sfu/internal/compositor"
	"github.com/spacecast/spacecast/services/sfu/internal/space"
)

// ErrNotActive: the livestream service does not (yet) know the broadcast as active.
var ErrNotActive = errors.New("broadcast: not active at the livestream service")

// Ingest is where an active broadcast publishes, with its compositor settings.
type Ingest struct {
	RTMPURL    string  `json:"rtmp_url"`
	StreamKey  string  `json:"stream_key"`
	Layout     string  `json:"layout"`
	Resolution string  `json:"resolution"`
	Background *string `json:"background,omitempty"`
}

// IngestLookup gives an active broadcast's ingest (never taken from events).
type IngestLookup interface {
	Ingest(ctx context.Context, broadcastID string) (Ingest, error)
}

// Host is a space hosted on this node as a broadcast uses it.
type Host interface {
	SetTap(space.Tap)
	SetBroadcasting(on bool)
}

var _ Host = (*space.Space)(nil)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Ingest IngestLookup
	// Hosted returns the space if this node hosts it (nil otherwise).
	Hosted func(spaceID string) Host
	// NewCompositor starts a compositor (default compositor.New).
	NewCompositor func(compositor.Options) (Compositor, error)
	// Backgrounds fetches a broadcast's background image (none drawn when nil).
	Backgrounds BackgroundFetcher
	Preset      string        // x264 preset (compositor default when "")
	FPS         int           // output frame rate (30 when 0)
	IngestWait  time.Duration // how long to retry the ingest lookup (15 s when 0)
	Logger      *slog.Logger
}

// Manager runs the broadcasts of the spaces this node hosts, at most one per space.
type Manager struct {
	cfg ManagerConfig
	log *slog.Logger

	mu      sync.Mutex
	running map[string]*running // space id
}

type running struct {
	broadcastID string
	cancel      context.CancelFunc // ends a start still looking up the ingest
	b           *Broadcaster       // nil while starting
	host        Host
}

// NewManager checks cfg.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Ingest == nil || cfg.Hosted == nil || cfg.Logger == nil {
		return nil, errors.New("broadcast: Ingest, Hosted and Logger are required")
	}
	if cfg.NewCompositor == nil {
		cfg.NewCompositor = func(o compositor.Options) (Compositor, error) { return compositor.New(o) }
	}
	if cfg.IngestWait <= 0 {
		cfg.IngestWait = 15 * time.Second
	}
	if cfg.FPS == 0 {
		cfg.FPS = 30
	}
	return &Manager{cfg: cfg, log: cfg.Logger, running: map[string]*running{}}, nil
}

// Active starts broadcast broadcastID of spaceID if this node hosts the space (else it is
// another node's, or nobody's, and nothing happens). It returns at once; the ingest lookup
// and the compositor start in the background.
func (m *Manager) Active(spaceID, broadcastID string) {
	host := m.cfg.Hosted(spaceID)
	if host == nil {
		m.log.Debug("broadcast of a space not hosted here", "space_id", spaceID, "broadcast_id", broadcastID)
		return
	}
	m.mu.Lock()
	if r := m.running[spaceID]; r != nil {
		m.mu.Unlock()
		if r.broadcastID != broadcastID {
			m.log.Warn("a second broadcast of a space ignored", "space_id", spaceID, "broadcast_id", broadcastID, "running", r.broadcastID)
		}
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{broadcastID: broadcastID, cancel: cancel, host: host}
	m.running[spaceID] = r
	m.mu.Unlock()
	go m.start(ctx, spaceID, r)
}

func (m *Manager) start(ctx context.Context, spaceID string, r *running) {
	log := m.log.With("space_id", spaceID, "broadcast_id", r.broadcastID)
	in, err := m.lookup(ctx, r.broadcastID)
	if err != nil {
		log.Error("broadcast not started: no ingest", "err", err)
		m.forget(spaceID, r)
		return
	}
	b, err := m.launch(ctx, r.broadcastID, in, log)
	if err != nil {
		log.Error("broadcast not started", "err", err)
		m.forget(spaceID, r)
		return
	}
	m.mu.Lock()
	if m.running[spaceID] != r || ctx.Err() != nil {
		m.mu.Unlock()
		b.Stop()
		return
	}
	r.b = b
	m.mu.Unlock()
	r.host.SetTap(b)
	r.host.SetBroadcasting(true)
	log.Info("broadcast started", "layout", in.Layout, "resolution", in.Resolution)
	go func() {
		<-b.Done()
		m.mu.Lock()
		cur := m.running[spaceID] == r
		m.mu.Unlock()
		if cur {
			log.Error("broadcast's compositor ended on its own")
			m.Stop(spaceID)
		}
	}()
}

func (m *Manager) lookup(ctx context.Context, id string) (Ingest, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.IngestWait)
	defer cancel()
	for {
		in, err := m.cfg.Ingest.Ingest(ctx, id)
		if err == nil {
			return in, nil
		}
		select {
		case <-ctx.Done():
			return Ingest{}, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (m *Manager) launch(ctx context.Context, id string, in Ingest, log *slog.Logger) (*Broadcaster, error) {
	w, h, err := ParseResolution(in.Resolution)
	if err != nil {
		return nil, err
	}
	layout, err := compositor.ParseLayout(in.Layout)
	if err != nil {
		return nil, err
	}
	// The decoders' keyframe requests and the tiles' sizes go to the broadcaster (made after
	// the compositor), which knows each tile's track.
	var bref atomic.Pointer[Broadcaster]
	o := compositor.Options{Width: w, Height: h, FPS: m.cfg.FPS, Layout: layout, Preset: m.cfg.Preset,
		RTMPURL: strings.TrimRight(in.RTMPURL, "/") + "/" + in.StreamKey, Logger: log,
		RequestKeyframe: func(id string) {
			if b := bref.Load(); b != nil {
				b.RequestKeyframe(id)
			}
		},
		VideoSize: func(id string, w, h int) {
			if b := bref.Load(); b != nil {
				b.VideoSize(id, w, h)
			}
		}}
	if in.Background != nil && *in.Background != "" {
		// Fetched once per broadcast; a background that cannot be fetched or decoded is
		// logged and the broadcast runs on black.
		switch img, err := m.fetchBackground(ctx, *in.Background); {
		case err != nil:
			log.Warn("broadcast runs without its background", "background", *in.Background, "err", err)
		default:
			o.Background = backgroundReader(img)
		}
	}
	c, err := m.cfg.NewCompositor(o)
	if err != nil && o.Background != nil && errors.Is(err, compositor.ErrBackground) {
		log.Warn("broadcast runs without its background", "background", *in.Background, "err", err)
		o.Background = nil
		c, err = m.cfg.NewCompositor(o)
	}
	if err != nil {
		return nil, err
	}
	b, err := New(id, c, log)
	if err != nil {
		return nil, err
	}
	bref.Store(b)
	return b, nil
}

func (m *Manager) fetchBackground(ctx context.Context, url string) ([]byte, error) {
	if m.cfg.Backgrounds == nil {
		return nil, fmt.Errorf("%w: this node fetches no backgrounds", ErrBackgroundFetch)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return m.cfg.Backgrounds.Fetch(ctx, url)
}

func (m *Manager) forget(spaceID string, r *running) {
	m.mu.Lock()
	if m.running[spaceID] == r {
		delete(m.running, spaceID)
	}
	m.mu.Unlock()
}

// Idle stops the space's broadcast broadcastID (space.broadcast.idle / deleted).
func (m *Manager) Idle(spaceID, broadcastID string) {
	m.mu.Lock()
	r := m.running[spaceID]
	m.mu.Unlock()
	if r != nil && r.broadcastID == broadcastID {
		m.Stop(spaceID)
	}
}

// Stop stops the space's broadcast, if any (also when the space retires from this node).
func (m *Manager) Stop(spaceID string) {
	m.mu.Lock()
	r := m.running[spaceID]
	delete(m.running, spaceID)
	m.mu.Unlock()
	if r == nil {
		return
	}
	r.cancel()
	if r.b == nil {
		return
	}
	r.host.SetTap(nil)
	r.host.SetBroadcasting(false)
	r.b.Stop()
	m.log.Info("broadcast stopped", "space_id", spaceID, "broadcast_id", r.broadcastID)
}

// StopAll stops every broadcast (node shutdown).
func (m *Manager) StopAll() {
	m.mu.Lock()
	ids := make([]string, 0, len(m.running))
	for id := range m.running {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.Stop(id)
	}
}

// HTTPIngest reads ingests from livestream's GET /internal/v1/broadcasts/{id}/ingest.
type HTTPIngest struct {
	base, secret string
	client       *http.Client
}

var _ IngestLookup = (*HTTPIngest)(nil)

// NewHTTPIngest talks to the livestream service at baseURL with the internal secret.
func NewHTTPIngest(baseURL, secret string) (*HTTPIngest, error) {
	if u, err := url.Parse(baseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("broadcast: bad livestream URL %q", baseURL)
	}
	if secret == "" {
		return nil, errors.New("broadcast: the internal secret is required")
	}
	return &HTTPIngest{base: strings.TrimRight(baseURL, "/"), secret: secret, client: &http.Client{Timeout: 3 * time.Second}}, nil
}

// Ingest implements IngestLookup.
func (h *HTTPIngest) Ingest(ctx context.Context, id string) (Ingest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/internal/v1/broadcasts/"+url.PathEscape(id)+"/ingest", nil)
	if err != nil {
		return Ingest{}, err
	}
	req.Header.Set(auth.InternalAuthHeader, h.secret)
	res, err := h.client.Do(req)
	if err != nil {
		return Ingest{}, err
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
		var body struct {
			Data Ingest `json:"data"`
		}
		if err := json.NewDecoder(io.LimitReader(res.Body, 1<<16)).Decode(&body); err != nil {
			return Ingest{}, fmt.Errorf("broadcast: ingest response: %w", err)
		}
		if body.Data.RTMPURL == "" || body.Data.StreamKey == "" {
			return Ingest{}, errors.New("broadcast: ingest response without rtmp_url or stream_key")
		}
		return body.Data, nil
	case http.StatusNotFound:
		return Ingest{}, ErrNotActive
	}
	return Ingest{}, fmt.Errorf("broadcast: ingest lookup: status %d", res.StatusCode)
}
