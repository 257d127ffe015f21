// Package session is the live stream state machine around an encoder connection: stream key
// lookup, the one-publisher lock in Redis, the connected → recording → active → disconnected
// transitions, and the reconnect_window timers (a Redis sorted set) that end a recording.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/timers"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// Notifier is woken after a transaction that wrote events.
type Notifier interface{ Notify() }

// Options configure a Manager.
type Options struct {
	Store     *store.Store
	Redis     redis.UniversalClient
	KeyPrefix string // prepended to every Redis key
	Relay     Notifier
	Logger    *slog.Logger
	LockTTL   time.Duration // publisher lock lifetime, renewed every LockTTL/3 while media flows (default 10 s)
	Tick      time.Duration // timer poll period (default 250 ms)
	// OnFinish is called when a recording ends, on the instance that ends it, just before the
	// asset becomes ready (so that whoever sees asset.ready finds the files closed): it closes
	// the recording on disk. Optional.
	OnFinish func(ctx context.Context, liveStreamID, assetID string)
}

// Manager runs sessions; one per service instance, sharing Redis and SQL with the others.
type Manager struct {
	o      Options
	timers *timers.Queue
	log    *slog.Logger

	mu   sync.Mutex
	live map[string]*Session // by live stream id, sessions of this instance
}

// New builds a Manager.
func New(o Options) (*Manager, error) {
	if o.Store == nil || o.Redis == nil || o.Relay == nil || o.Logger == nil {
		return nil, errors.New("session: Store, Redis, Relay and Logger are required")
	}
	if o.LockTTL <= 0 {
		o.LockTTL = 10 * time.Second
	}
	if o.Tick <= 0 {
		o.Tick = 250 * time.Millisecond
	}
	q, err := timers.New(o.Redis, o.KeyPrefix+"{livestream}:reconnect")
	if err != nil {
		return nil, err
	}
	return &Manager{o: o, timers: q, log: o.Logger, live: map[string]*Session{}}, nil
}

// Session is one encoder connection of a live stream.
type Session struct {
	m        *Manager
	Stream   store.LiveStream
	Asset    store.Asset
	Resumed  bool // a reconnect inside reconnect_window: same asset, HLS needs a discontinuity
	token    string
	started  time.Time
	kick     func()
	mu       sync.Mutex
	lastData time.Time
	media    bool
	first    time.Duration // first and last media timestamps of this connection
	last     time.Duration
	active   bool
	ended    bool
}

func (m *Manager) lockKey(id string) string { return m.o.KeyPrefix + "{ls:" + id + "}:publisher" }

func timerMember(streamID, assetID string) string { return streamID + ":" + assetID }

var (
	renewScript   = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

// Begin starts a session for key. kick is called (once, from any goroutine) when the session
// must end from outside: complete, disable, delete, max_continuous_duration, or a lost lock.
func (m *Manager) Begin(ctx context.Context, key string, kick func()) (*Session, error) {
	if key == "" {
		return nil, ErrBadKey
	}
	ls, err := m.o.Store.GetByStreamKey(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrBadKey
	}
	if err != nil {
		return nil, err
	}
	if ls.Status == store.StatusDisabled {
		return nil, ErrDisabled
	}
	token := idgen.New()
	ok, err := m.o.Redis.SetNX(ctx, m.lockKey(ls.ID), token, m.o.LockTTL).Result()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrBusy
	}
	if ls.ActiveAssetID != nil {
		if _, err := m.timers.Cancel(ctx, timerMember(ls.ID, *ls.ActiveAssetID)); err != nil {
			m.unlock(ls.ID, token)
			return nil, err
		}
	}
	ls, asset, resumed, err := m.o.Store.Connect(ctx, ls.ID)
	if err != nil {
		m.unlock(ls.ID, token)
		if errors.Is(err, store.ErrDisabled) {
			return nil, ErrDisabled
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrBadKey
		}
		return nil, err
	}
	m.o.Relay.Notify()
	s := &Session{m: m, Stream: ls, Asset: asset, Resumed: resumed, token: token, started: time.Now(), lastData: time.Now(), kick: kick}
	m.mu.Lock()
	m.live[ls.ID] = s
	m.mu.Unlock()
	return s, nil
}

func (m *Manager) unlock(id, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := releaseScript.Run(ctx, m.o.Redis, []string{m.lockKey(id)}, token).Err(); err != nil {
		m.log.Warn("releasing publisher lock", "live_stream_id", id, "err", err)
	}
}

// Media records that media with timestamp ts arrived: the first call emits
// livestream.recording. The span of timestamps is the duration this connection adds to the asset.
func (s *Session) Media(ctx context.Context, ts time.Duration) error {
	s.mu.Lock()
	s.lastData = time.Now()
	first := !s.media
	s.media = true
	if first || ts < s.first {
		s.first = ts
	}
	if first || ts > s.last {
		s.last = ts
	}
	s.mu.Unlock()
	if !first {
		return nil
	}
	if _, err := s.m.o.Store.Recording(ctx, s.Stream.ID); err != nil {
		return err
	}
	s.m.o.Relay.Notify()
	return nil
}

// Playable records that the first segment is ready: the stream becomes active.
func (s *Session) Playable(ctx context.Context) error {
	s.mu.Lock()
	first := !s.active
	s.active = true
	s.mu.Unlock()
	if !first {
		return nil
	}
	if _, err := s.m.o.Store.Activate(ctx, s.Stream.ID); err != nil {
		return err
	}
	s.m.o.Relay.Notify()
	return nil
}

// End closes the session after the encoder left: livestream.disconnected, the lock released,
// and the recording ends when reconnect_window lapses without a reconnect.
func (s *Session) End(ctx context.Context) error { return s.end(ctx, false) }

func (s *Session) end(ctx context.Context, now bool) error {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil
	}
	s.ended = true
	recorded := s.last - s.first
	s.mu.Unlock()
	m := s.m
	m.mu.Lock()
	if m.live[s.Stream.ID] == s {
		delete(m.live, s.Stream.ID)
	}
	m.mu.Unlock()
	defer m.unlock(s.Stream.ID, s.token)
	holder, err := m.o.Redis.Get(ctx, m.lockKey(s.Stream.ID)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	if holder != "" && holder != s.token {
		return nil // a new publisher took the stream over: the session goes on there
	}
	cur, err := m.o.Store.Get(ctx, "", s.Stream.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	if cur.ActiveAssetID == nil || *cur.ActiveAssetID != s.Asset.ID {
		return nil // completed or disabled through another instance: that recording has ended
	}
	ls, err := m.o.Store.Disconnect(ctx, s.Stream.ID, recorded)
	if err != nil {
		return err
	}
	m.o.Relay.Notify()
	if now {
		return m.finish(ctx, ls.ID, s.Asset.ID)
	}
	due := time.Now().Add(time.Duration(ls.ReconnectWindow) * time.Second)
	return m.timers.Schedule(ctx, timerMember(ls.ID, s.Asset.ID), due)
}

func (m *Manager) finish(ctx context.Context, id, assetID string) error {
	if _, err := m.timers.Cancel(ctx, timerMember(id, assetID)); err != nil {
		return err
	}
	m.finished(ctx, id, assetID)
	if _, err := m.o.Store.Finish(ctx, id, assetID); err != nil {
		return err
	}
	m.o.Relay.Notify()
	return nil
}

func (m *Manager) finished(ctx context.Context, id, assetID string) {
	if m.o.OnFinish != nil {
		m.o.OnFinish(ctx, id, assetID)
	}
}

// EndNow ends stream id's recording at once (complete, disable, delete): the publisher of this
// instance is kicked, the pending timer dropped and the asset made ready.
func (m *Manager) EndNow(ctx context.Context, id string) error {
	m.mu.Lock()
	s := m.live[id]
	m.mu.Unlock()
	if s != nil {
		if s.kick != nil {
			s.kick()
		}
		if err := s.end(ctx, true); err != nil {
			return err
		}
	}
	ls, err := m.o.Store.Get(ctx, "", id)
	if err != nil || ls.ActiveAssetID == nil {
		return err
	}
	return m.finish(ctx, id, *ls.ActiveAssetID)
}

// Run fires due reconnect timers and renews (or gives up) this instance's publisher locks
// until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.o.Tick)
	defer t.Stop()
	lastRenew := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := m.fire(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("reconnect timers", "err", err)
		}
		if time.Since(lastRenew) >= m.o.LockTTL/3 {
			lastRenew = time.Now()
			m.renew(ctx)
		}
	}
}

func (m *Manager) fire(ctx context.Context) error {
	due, err := m.timers.Claim(ctx, time.Now(), 30*time.Second, 32)
	if err != nil {
		return err
	}
	for _, member := range due {
		streamID, assetID, ok := strings.Cut(member, ":")
		if !ok {
			_ = m.timers.Done(ctx, member)
			continue
		}
		n, err := m.o.Redis.Exists(ctx, m.lockKey(streamID)).Result()
		if err != nil {
			return err
		}
		if n > 0 {
			// An encoder reconnected (it holds the lock and is cancelling this timer): the
			// window did not lapse.
			if err := m.timers.Done(ctx, member); err != nil {
				return err
			}
			continue
		}
		m.finished(ctx, streamID, assetID)
		if _, err := m.o.Store.Finish(ctx, streamID, assetID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("ending recording %s: %w", assetID, err) // the lease brings it back
		}
		m.o.Relay.Notify()
		if err := m.timers.Done(ctx, member); err != nil {
			return err
		}
	}
	return nil
}

// renew extends the lock of every session that received media within LockTTL and enforces
// max_continuous_duration; a silent session keeps its lock only until it expires, so that a
// reconnecting encoder can take the stream over, and is kicked when the lock is lost.
func (m *Manager) renew(ctx context.Context) {
	m.mu.Lock()
	live := make([]*Session, 0, len(m.live))
	for _, s := range m.live {
		live = append(live, s)
	}
	m.mu.Unlock()
	for _, s := range live {
		s.mu.Lock()
		silent := time.Since(s.lastData) > m.o.LockTTL
		s.mu.Unlock()
		if time.Since(s.started) > time.Duration(s.Stream.MaxContinuousDuration)*time.Second {
			m.log.Info("max_continuous_duration reached", "live_stream_id", s.Stream.ID)
			if err := m.EndNow(ctx, s.Stream.ID); err != nil {
				m.log.Error("ending recording", "live_stream_id", s.Stream.ID, "err", err)
			}
			continue
		}
		if ls, err := m.o.Store.Get(ctx, "", s.Stream.ID); errors.Is(err, store.ErrNotFound) ||
			(err == nil && (ls.ActiveAssetID == nil || *ls.ActiveAssetID != s.Asset.ID || ls.Status == store.StatusDisabled)) {
			// Completed, disabled or deleted through another instance.
			if s.kick != nil {
				s.kick()
			}
			continue
		}
		if silent {
			holder, err := m.o.Redis.Get(ctx, m.lockKey(s.Stream.ID)).Result()
			if (err == nil && holder != s.token) && s.kick != nil {
				s.kick() // a new publisher took over
			}
			continue
		}
		n, err := renewScript.Run(ctx, m.o.Redis, []string{m.lockKey(s.Stream.ID)}, s.token, m.o.LockTTL.Milliseconds()).Int()
		if err != nil {
			m.log.Warn("renewing publisher lock", "live_stream_id", s.Stream.ID, "err", err)
			continue
		}
		if n == 0 && s.kick != nil {
			m.log.Warn("publisher lock lost", "live_stream_id", s.Stream.ID)
			s.kick()
		}
	}
}

// RecordingEnded reports whether an asset's recording is over (the asset is no longer
// preparing, or is gone), whichever instance ended it.
func (m *Manager) RecordingEnded(ctx context.Context, assetID string) (bool, error) {
	a, err := m.o.Store.GetAsset(ctx, "", assetID)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return a.Status != store.AssetPreparing, nil
}
