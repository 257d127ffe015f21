// Package session is the live stream ingest state machine. Each live stream with a publisher
// has one owner: a goroutine on the instance that holds the stream's Redis lease (lease.go),
// which alone writes the stream's recording (its HLS segmenter), renews the lease, enforces
// max_continuous_duration, records the connected → recording → active → disconnected
// transitions and schedules the reconnect_window timer. Other goroutines and other replicas
// talk to it by message: the publisher's connection through its Session, complete / disable /
// delete through Redis pub/sub (control channel). A stream nobody owns is settled (ended,
// timed, or recorded as disconnected) by whoever takes its lease: the reconnect timer loop, the
// orphan sweeper (sweep.go), or EndNow.
package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/libs/timers"
	"github.com/spacecast/spacecast/services/livestream/internal/hls"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// Notifier is woken after a transaction that wrote events.
type Notifier interface{ Notify() }

// Options configure a Manager.
type Options struct {
	Store     *store.Store
	Redis     redis.UniversalClient
	KeyPrefix string // prepended to every Redis key and channel
	Relay     Notifier
	Logger    *slog.Logger
	// LockTTL is the stream lease lifetime, renewed every LockTTL/3 while media flows
	// (default 10 s). A publisher silent for LockTTL is dropped.
	LockTTL time.Duration
	// Tick is the longest the reconnect timer loop sleeps (default 1 s): it sleeps until the
	// earliest timer is due and is woken when this instance schedules one, so Tick only bounds
	// how late a timer scheduled by another instance (that then died) fires.
	Tick time.Duration
	// SweepInterval is how often the orphan sweeper looks for streams whose lease holder died
	// (default 2 s).
	SweepInterval time.Duration
	// Recordings: <Dir>/<asset id>/{live.m3u8,vod.m3u8,seg-N.ts}.
	Dir             string
	SegmentDuration time.Duration // HLS target duration (default 2 s)
	LiveWindow      int           // segments in the live playlist (default 6)
	// LowLatencyPart is the LL-HLS part duration of latency_mode low (default 200 ms).
	LowLatencyPart time.Duration
}

// Manager runs the owners of this instance's live streams, the reconnect timers, the orphan
// sweeper and the control channel subscription; one per service instance, sharing Redis and
// SQL with the others.
type Manager struct {
	o         Options
	log       *slog.Logger
	timers    *timers.Queue
	leasesKey string
	tokensKey string
	channel   string

	mu     sync.Mutex        // guards the registry only; each owner's state is its own goroutine's
	owners map[string]*owner // by live stream id

	timerWake chan struct{} // a timer was scheduled here: the timer loop looks again
}

// New builds a Manager.
func New(o Options) (*Manager, error) {
	if o.Store == nil || o.Redis == nil || o.Relay == nil || o.Logger == nil || o.Dir == "" {
		return nil, errors.New("session: Store, Redis, Relay, Logger and Dir are required")
	}
	if o.LockTTL <= 0 {
		o.LockTTL = 10 * time.Second
	}
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 2 * time.Second
	}
	if o.SegmentDuration <= 0 {
		o.SegmentDuration = 2 * time.Second
	}
	if o.LiveWindow <= 0 {
		o.LiveWindow = 6
	}
	if o.LowLatencyPart <= 0 {
		o.LowLatencyPart = 200 * time.Millisecond
	}
	if o.LowLatencyPart > 500*time.Millisecond {
		return nil, errors.New("session: LowLatencyPart must be at most 500 ms")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("session: recordings directory: %w", err)
	}
	q, err := timers.New(o.Redis, o.KeyPrefix+"{livestream}:reconnect")
	if err != nil {
		return nil, err
	}
	return &Manager{o: o, log: o.Logger, timers: q,
		leasesKey: o.KeyPrefix + "{livestream}:leases", tokensKey: o.KeyPrefix + "{livestream}:lease-tokens",
		channel: o.KeyPrefix + "{livestream}:control", owners: map[string]*owner{}, timerWake: make(chan struct{}, 1)}, nil
}

func timerMember(streamID, assetID string) string { return streamID + ":" + assetID }

// schedule puts a reconnect timer in the queue and wakes this instance's timer loop, which
// then sleeps until the earliest one instead of until its next tick.
func (m *Manager) schedule(ctx context.Context, member string, due time.Time) error {
	if err := m.timers.Schedule(ctx, member, due); err != nil {
		return err
	}
	select {
	case m.timerWake <- struct{}{}:
	default:
	}
	return nil
}

// AssetDir is the recording directory of an asset.
func (m *Manager) AssetDir(assetID string) string { return filepath.Join(m.o.Dir, assetID) }

// segmenterConfig is how a recording of latency mode mode is cut (docs/live-streams.md):
// standard: MPEG-TS segments of SegmentDuration; reduced: 1 s MPEG-TS segments with a 3 s
// HOLD-BACK; low: LL-HLS, fMP4 segments of 1 s cut into parts of LowLatencyPart. The live
// window spans about the same time in every mode. Ending a recording needs no mode: the
// segmenter reads the container from the playlist.
func (m *Manager) segmenterConfig(assetID, mode string, log *slog.Logger) hls.SegmenterConfig {
	cfg := hls.SegmenterConfig{Dir: m.AssetDir(assetID), TargetDuration: m.o.SegmentDuration, LiveWindow: m.o.LiveWindow, Logger: log}
	window := m.o.SegmentDuration * time.Duration(m.o.LiveWindow)
	switch mode {
	case "reduced":
		cfg.TargetDuration, cfg.HoldBack = time.Second, 3*time.Second
		cfg.LiveWindow = max(int(window/time.Second), 3)
	case "low":
		cfg.Container, cfg.TargetDuration, cfg.PartDuration = hls.ContainerFMP4, time.Second, m.o.LowLatencyPart
		cfg.LiveWindow = max(int(window/time.Second), 3)
	}
	return cfg
}

// Publisher is what Begin needs to know about the encoder's connection.
type Publisher struct {
	// Kick closes the connection (once, from any goroutine): the recording was ended from
	// outside (complete, disable, delete, max_continuous_duration), the publisher went silent,
	// or the lease was lost. Optional.
	Kick func()
	// OnSegment is called after each segment is listed (from the writer's goroutine). Optional.
	OnSegment func(hls.SegmentInfo)
	// Protocol is the ingest protocol, "rtmp" or "rtmps" (the live stream's
	// active_ingest_protocol); "" is "rtmp".
	Protocol string
}

// Begin starts a session for key: it takes the stream's lease, settles what a previous
// publisher left (a reconnect inside reconnect_window continues its asset; after the window
// that asset is ended first and a new one starts), and starts the stream's owner.
func (m *Manager) Begin(ctx context.Context, key string, p Publisher) (*Session, error) {
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
	ok, prev, settling, err := m.tryAcquire(ctx, ls.ID, token)
	for wait := time.Now().Add(3 * time.Second); err == nil && !ok && settling && time.Now().Before(wait); {
		// An instance is settling the stream (ending the recording whose window lapsed, ...):
		// that takes a moment, then the encoder gets in.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		ok, prev, settling, err = m.tryAcquire(ctx, ls.ID, token)
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrBusy
	}
	s, err := m.begin(ctx, ls.ID, token, prev, p)
	if err != nil {
		m.release(ls.ID, token)
		switch {
		case errors.Is(err, store.ErrDisabled):
			return nil, ErrDisabled
		case errors.Is(err, store.ErrNotFound):
			return nil, ErrBadKey
		}
		return nil, err
	}
	return s, nil
}

func (m *Manager) begin(ctx context.Context, id, token string, prev time.Time, p Publisher) (*Session, error) {
	if _, err := m.settle(ctx, id, prev, true); err != nil {
		return nil, err
	}
	ls, asset, resumed, err := m.o.Store.Connect(ctx, id, p.Protocol)
	if err != nil {
		return nil, err
	}
	m.o.Relay.Notify()
	if _, err := m.timers.Cancel(ctx, timerMember(id, asset.ID)); err != nil {
		return nil, err
	}
	log := m.log.With("live_stream_id", id, "asset_id", asset.ID)
	o := &owner{m: m, log: log, stream: ls, assetID: asset.ID, token: token, kick: p.Kick, onSegment: p.OnSegment,
		cmds: make(chan command, 16), done: make(chan struct{})}
	o.lastMedia.Store(time.Now().UnixNano())
	cfg := m.segmenterConfig(asset.ID, ls.LatencyMode, log)
	cfg.OnSegment = o.segmentWritten
	if resumed {
		o.seg, err = hls.OpenSegmenter(cfg) // continues with EXT-X-DISCONTINUITY
	} else {
		o.seg, err = hls.NewSegmenter(cfg)
	}
	if err != nil {
		// The asset stays as it is (connected, then disconnected at once): the window decides.
		m.disconnected(ctx, id, asset.ID, time.Now(), ls.ReconnectWindow)
		return nil, fmt.Errorf("opening the recording: %w", err)
	}
	m.mu.Lock()
	m.owners[id] = o
	m.mu.Unlock()
	go o.run()
	return &Session{Stream: ls, Asset: asset, Resumed: resumed, o: o}, nil
}

// disconnected records that the current connection of assetID ended at `at` and schedules the
// end of the recording at at + window (the caller holds the lease).
func (m *Manager) disconnected(ctx context.Context, id, assetID string, at time.Time, windowSeconds int) {
	if _, err := m.o.Store.Disconnect(ctx, id, assetID, at); err != nil {
		m.log.Error("recording the disconnect", "live_stream_id", id, "err", err)
	}
	m.o.Relay.Notify()
	due := at.Add(time.Duration(windowSeconds) * time.Second)
	if err := m.schedule(ctx, timerMember(id, assetID), due); err != nil {
		m.log.Error("scheduling the reconnect timer", "live_stream_id", id, "err", err)
	}
}

// settle brings stream id, whose lease the caller holds and which has no live owner, to its
// truthful state: a recording whose publisher died (no disconnect recorded) is disconnected
// at the last thing known of it (the dead lease's last renewal, else the recording's last
// write); a recording whose reconnect_window has lapsed is ended (asset ready). Otherwise,
// unless connecting (the caller continues the recording), the reconnect timer is scheduled.
// It reports whether the recording was ended.
func (m *Manager) settle(ctx context.Context, id string, prev time.Time, connecting bool) (bool, error) {
	st, err := m.o.Store.GetRecordingState(ctx, id)
	if err != nil || st.AssetID == "" {
		return false, err
	}
	disc := st.DisconnectedAt
	if disc == nil {
		at := m.lastKnown(st, prev)
		if _, err := m.o.Store.Disconnect(ctx, id, st.AssetID, at); err != nil {
			return false, err
		}
		m.o.Relay.Notify()
		m.log.Info("recording had no owner: disconnected at its last known time", "live_stream_id", id,
			"asset_id", st.AssetID, "at", at)
		disc = &at
	}
	due := disc.Add(st.ReconnectWindow)
	if !time.Now().Before(due) {
		return true, m.endRecording(ctx, id, st.AssetID)
	}
	if connecting {
		return false, nil
	}
	return false, m.schedule(ctx, timerMember(id, st.AssetID), due)
}

// lastKnown is when a recording without owner was last known alive: its dead lease's last
// renewal, else (no lease record, e.g. a fresh Redis) the later of its playlist's last write
// and the stream's last SQL change.
func (m *Manager) lastKnown(st store.RecordingState, prev time.Time) time.Time {
	if !prev.IsZero() {
		return prev.Add(-m.o.LockTTL)
	}
	at := st.UpdatedAt
	if fi, err := os.Stat(filepath.Join(m.AssetDir(st.AssetID), hls.VODPlaylist)); err == nil && fi.ModTime().After(at) {
		at = fi.ModTime()
	}
	return at
}

// endRecording ends a recording that no segmenter writes (the caller holds the lease): the
// playlists are closed on disk, the asset becomes ready with the duration its playlist lists.
func (m *Manager) endRecording(ctx context.Context, id, assetID string) error {
	dur, err := hls.EndRecording(m.segmenterConfig(assetID, "", m.log))
	if err != nil {
		return fmt.Errorf("closing the recording %s: %w", assetID, err)
	}
	if _, err := m.o.Store.Finish(ctx, id, assetID, dur); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	m.o.Relay.Notify()
	_, err = m.timers.Cancel(ctx, timerMember(id, assetID))
	return err
}

func (m *Manager) owner(id string) *owner {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.owners[id]
}

func (m *Manager) unregister(o *owner) {
	m.mu.Lock()
	if m.owners[o.stream.ID] == o {
		delete(m.owners, o.stream.ID)
	}
	m.mu.Unlock()
}

// control is a message on the control channel.
type control struct {
	Op       string `json:"op"` // "end": end the recording now (complete, disable, delete)
	StreamID string `json:"live_stream_id"`
	AssetID  string `json:"asset_id"`
}

// EndNow ends stream id's current recording at once (complete, disable, delete), whichever
// instance owns it: the owner is told (directly, or by message on the control channel), kicks
// its publisher, stops writing and makes the asset ready; a recording nobody owns (its owner
// died) is ended here once its lease is free. It returns when the asset is ready.
func (m *Manager) EndNow(ctx context.Context, id string) error {
	st, err := m.o.Store.GetRecordingState(ctx, id)
	if err != nil || st.AssetID == "" {
		return err
	}
	assetID := st.AssetID
	if o := m.owner(id); o != nil && o.assetID == assetID {
		if err := o.call(ctx, cmdEnd); !errors.Is(err, errOwnerGone) {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*m.o.LockTTL+5*time.Second)
	defer cancel()
	msg, _ := json.Marshal(control{Op: "end", StreamID: id, AssetID: assetID})
	var published, checked time.Time
	token := settlerToken()
	for {
		ok, prev, err := m.acquire(ctx, id, token)
		if err != nil {
			return err
		}
		if ok {
			defer m.release(id, token)
			st, err := m.o.Store.GetRecordingState(ctx, id)
			if err != nil || st.AssetID != assetID {
				return err // ended meanwhile
			}
			if st.DisconnectedAt == nil {
				if _, err := m.o.Store.Disconnect(ctx, id, assetID, m.lastKnown(st, prev)); err != nil {
					return err
				}
			}
			return m.endRecording(ctx, id, assetID)
		}
		if time.Since(published) >= time.Second {
			published = time.Now()
			if err := m.o.Redis.Publish(ctx, m.channel, msg).Err(); err != nil {
				return err
			}
		}
		if time.Since(checked) >= 500*time.Millisecond {
			checked = time.Now()
			if st, err := m.o.Store.GetRecordingState(ctx, id); err != nil || st.AssetID != assetID {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ending the recording of %s: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Run subscribes to the control channel, fires due reconnect timers and sweeps orphans until
// ctx ends; then it disconnects this instance's owners (a clean stop).
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m.listen(ctx) }()
	go func() { defer wg.Done(); m.sweepLoop(ctx) }()
	t := time.NewTimer(0) // timers that came due while no instance ran fire at once
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			m.shutdown()
			return nil
		case <-t.C:
		case <-m.timerWake:
		}
		wait := m.o.Tick
		next, more, err := m.fire(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				m.log.Error("reconnect timers", "err", err)
			}
		case more:
			wait = 0 // a full batch: claim the rest at once
		case !next.IsZero():
			wait = min(wait, max(time.Until(next), minTimerWait))
		}
		t.Reset(wait)
	}
}

// minTimerWait keeps the timer loop from spinning on a timer due "now" by another clock.
const minTimerWait = 10 * time.Millisecond

// timerBatch is how many due timers one claim takes.
const timerBatch = 32

func (m *Manager) shutdown() {
	m.mu.Lock()
	owners := make([]*owner, 0, len(m.owners))
	for _, o := range m.owners {
		owners = append(owners, o)
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, o := range owners {
		_ = o.call(ctx, cmdGone)
	}
}

// listen hands control messages to this instance's owners.
func (m *Manager) listen(ctx context.Context) {
	ps := m.o.Redis.Subscribe(ctx, m.channel)
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			var c control
			if err := json.Unmarshal([]byte(msg.Payload), &c); err != nil || c.Op != "end" {
				m.log.Warn("bad control message", "payload", msg.Payload)
				continue
			}
			if o := m.owner(c.StreamID); o != nil && o.assetID == c.AssetID {
				go func() { _ = o.call(context.WithoutCancel(ctx), cmdEnd) }()
			}
		}
	}
}

// fire settles the streams whose reconnect timer is due. It returns when the earliest timer
// left is due (zero: none), and more when the claim was a full batch.
func (m *Manager) fire(ctx context.Context) (next time.Time, more bool, err error) {
	due, next, err := m.timers.ClaimNext(ctx, time.Now(), 30*time.Second, timerBatch)
	if err != nil {
		return time.Time{}, false, err
	}
	for _, member := range due {
		id, assetID, ok := strings.Cut(member, ":")
		if !ok {
			_ = m.timers.Done(ctx, member)
			continue
		}
		if err := m.fireOne(ctx, member, id, assetID); err != nil {
			return time.Time{}, false, fmt.Errorf("reconnect timer %s: %w", member, err) // the claim lease brings it back
		}
	}
	return next, len(due) == timerBatch, nil
}

func (m *Manager) fireOne(ctx context.Context, member, id, assetID string) error {
	token := settlerToken()
	ok, prev, err := m.acquire(ctx, id, token)
	if err != nil {
		return err
	}
	if !ok {
		st, err := m.o.Store.GetRecordingState(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err != nil || st.AssetID != assetID || st.DisconnectedAt == nil {
			// A publisher is back (its owner schedules a new timer when it leaves), or the
			// recording is over.
			return m.timers.Done(ctx, member)
		}
		// Someone settles the stream right now: look again shortly.
		return m.schedule(ctx, member, time.Now().Add(time.Second))
	}
	defer m.release(id, token)
	st, err := m.o.Store.GetRecordingState(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && st.AssetID != assetID) {
		return m.timers.Done(ctx, member) // deleted, or that recording is over
	}
	if err != nil {
		return err
	}
	_, err = m.settle(ctx, id, prev, false)
	return err
}

// Session is one encoder connection of a live stream: the publisher's handle on the stream's
// owner.
type Session struct {
	Stream  store.LiveStream
	Asset   store.Asset
	Resumed bool // a reconnect inside reconnect_window: same asset, the playlist gets a discontinuity
	o       *owner
	media   bool // only the connection's goroutine touches it
}
