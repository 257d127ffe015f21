// Package broadcast runs a space's broadcast on the SFU node hosting the space: a hidden
// subscriber (space.Tap) of every track feeding a compositor that publishes RTMP to the
// live stream's ingest. One goroutine per broadcast owns the layout state and takes the
// space's notifications as commands, so the space's owner never waits on ffmpeg.
package broadcast

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"

	"github.com/spacecast/spacecast/services/sfu/internal/compositor"
	"github.com/spacecast/spacecast/services/sfu/internal/space"
)

// Compositor is what a Broadcaster drives.
type Compositor interface {
	AddVideo(id, displayName, codec string) (compositor.RTPWriter, error)
	AddTile(id, displayName string) error
	AddAudio(id string) (compositor.RTPWriter, error)
	RemoveVideo(id string) error
	Remove(id string) error
	SetMuted(id string, muted bool) error
	SetActiveSpeaker(id string) error
	SetScreenshare(id string) error
	Close() error
	Done() <-chan struct{}
}

var (
	_ Compositor = (*compositor.Compositor)(nil)
	_ space.Tap  = (*Broadcaster)(nil)
)

// ErrBadResolution is a resolution that is not WIDTHxHEIGHT.
var ErrBadResolution = errors.New("broadcast: bad resolution")

// ParseResolution reads "1280x720".
func ParseResolution(s string) (w, h int, err error) {
	a, b, ok := strings.Cut(s, "x")
	if ok {
		w, err = strconv.Atoi(a)
		if err == nil {
			h, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || w <= 0 || h <= 0 {
		return 0, 0, fmt.Errorf("%w: %q", ErrBadResolution, s)
	}
	return w, h, nil
}

// Broadcaster is one running broadcast. Its space.Tap methods only queue commands.
type Broadcaster struct {
	ID  string
	c   Compositor
	log *slog.Logger

	mu     sync.Mutex
	queue  []func()
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once

	// keyframes: tile id -> the space's keyframe request of its track (TapTrack.Keyframe),
	// read by the compositor's decoder goroutines through RequestKeyframe.
	keyframes sync.Map
	// views: tile id -> the space's View of its simulcast track (TapTrack.View), told the
	// size the tile shows by the compositor's goroutine through VideoSize.
	views sync.Map

	// owned by the run goroutine
	conns map[string]*conn  // connection id
	video map[string]string // camera/screenshare track id -> tile id
}

type conn struct {
	name   string
	tile   bool // the camera tile (or its placeholder) exists
	screen string
}

// New starts a broadcaster driving c (which it closes on Stop).
func New(id string, c Compositor, log *slog.Logger) (*Broadcaster, error) {
	if id == "" || c == nil || log == nil {
		return nil, errors.New("broadcast: id, compositor and logger are required")
	}
	b := &Broadcaster{ID: id, c: c, log: log.With("broadcast_id", id), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), conns: map[string]*conn{}, video: map[string]string{}}
	go b.run()
	return b, nil
}

// Stop ends the broadcast: the compositor closes (the RTMP session ends).
func (b *Broadcaster) Stop() {
	b.closed.Do(func() { close(b.stop) })
	<-b.done
}

// Done is closed when the broadcaster stopped (Stop, or the compositor's encoder failed).
func (b *Broadcaster) Done() <-chan struct{} { return b.done }

func (b *Broadcaster) post(f func()) {
	b.mu.Lock()
	b.queue = append(b.queue, f)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Broadcaster) run() {
	defer close(b.done)
	defer func() {
		if err := b.c.Close(); err != nil {
			b.log.Warn("closing the compositor", "err", err)
		}
	}()
	for {
		select {
		case <-b.stop:
			return
		case <-b.c.Done():
			b.log.Error("compositor ended; broadcast stops")
			return
		case <-b.wake:
			b.mu.Lock()
			q := b.queue
			b.queue = nil
			b.mu.Unlock()
			for _, f := range q {
				f()
			}
		}
	}
}

// sink forwards packets once the compositor's input exists.
type sink struct {
	w atomic.Pointer[compositor.RTPWriter]
}

func (s *sink) WriteRTP(p *rtp.Packet) error {
	if w := s.w.Load(); w != nil {
		return (*w).WriteRTP(p)
	}
	return nil
}

func (b *Broadcaster) warn(what string, err error) {
	if err != nil {
		b.log.Warn("broadcast: "+what, "err", err)
	}
}

func (b *Broadcaster) conn(id, name string) *conn {
	c := b.conns[id]
	if c == nil {
		c = &conn{name: name}
		b.conns[id] = c
	}
	if name != "" {
		c.name = name
	}
	return c
}

// TrackAdded implements space.Tap.
func (b *Broadcaster) TrackAdded(t space.TapTrack) space.TapSink {
	s := &sink{}
	b.post(func() {
		c := b.conn(t.ConnectionID, t.DisplayName)
		var w compositor.RTPWriter
		var err error
		switch {
		case t.Track.Type == space.KindVideo && t.Track.Source == "screenshare":
			c.screen = t.ConnectionID + "/screenshare"
			b.setView(c.screen, t.View) // before AddVideo: the compositor tells the size at once
			if w, err = b.c.AddVideo(c.screen, c.name, t.MimeType); err == nil {
				b.video[t.Track.TID] = c.screen
				b.setKeyframe(c.screen, t.Keyframe)
				b.warn("screenshare", b.c.SetScreenshare(c.screen))
			}
		case t.Track.Type == space.KindVideo:
			b.setView(t.ConnectionID, t.View)
			if w, err = b.c.AddVideo(t.ConnectionID, c.name, t.MimeType); err == nil {
				c.tile = true
				b.video[t.Track.TID] = t.ConnectionID
				b.setKeyframe(t.ConnectionID, t.Keyframe)
				if t.Track.Muted {
					b.warn("mute", b.c.SetMuted(t.ConnectionID, true))
				}
			}
		default:
			if !c.tile {
				// Someone heard but not seen: the placeholder with the name.
				if err := b.c.AddTile(t.ConnectionID, c.name); err == nil {
					c.tile = true
				}
			}
			w, err = b.c.AddAudio(t.Track.TID)
		}
		if err != nil {
			b.log.Warn("broadcast: track not composed", "tid", t.Track.TID, "err", err)
			return
		}
		s.w.Store(&w)
	})
	return s
}

func (b *Broadcaster) setView(tileID string, view func(w, h int)) {
	if view == nil {
		b.views.Delete(tileID)
		return
	}
	b.views.Store(tileID, view)
}

// VideoSize tells the space the size the video of tile id is shown at, so that a simulcast
// camera sends the tile the layer that size needs; unknown ids are ignored. Safe from any
// goroutine; never blocks (the compositor calls it as Options.VideoSize).
func (b *Broadcaster) VideoSize(id string, w, h int) {
	if v, ok := b.views.Load(id); ok {
		v.(func(int, int))(w, h)
	}
}

func (b *Broadcaster) setKeyframe(tileID string, kf func()) {
	if kf == nil {
		b.keyframes.Delete(tileID)
		return
	}
	b.keyframes.Store(tileID, kf)
}

// RequestKeyframe asks the publisher of the video shown in tile id for a keyframe (the
// compositor's decoder needs one); unknown ids are ignored. Safe from any goroutine.
func (b *Broadcaster) RequestKeyframe(id string) {
	if kf, ok := b.keyframes.Load(id); ok {
		kf.(func())()
	}
}

// TrackRemoved implements space.Tap: a camera leaves the placeholder, a screenshare or an
// audio track goes.
func (b *Broadcaster) TrackRemoved(connectionID, tid string) {
	b.post(func() {
		c := b.conns[connectionID]
		tileID, isVideo := b.video[tid]
		delete(b.video, tid)
		switch {
		case !isVideo:
			b.warn("remove audio", b.c.Remove(tid))
		case c != nil && tileID == c.screen:
			c.screen = ""
			b.keyframes.Delete(tileID)
			b.views.Delete(tileID)
			b.warn("remove screenshare", b.c.Remove(tileID))
			b.warn("screenshare", b.c.SetScreenshare(""))
		default:
			b.keyframes.Delete(tileID)
			b.views.Delete(tileID)
			b.warn("remove video", b.c.RemoveVideo(tileID))
		}
	})
}

// TrackMuted implements space.Tap: a muted camera shows the placeholder.
func (b *Broadcaster) TrackMuted(connectionID, tid string, muted bool) {
	b.post(func() {
		if tileID, ok := b.video[tid]; ok {
			b.warn("mute", b.c.SetMuted(tileID, muted))
		}
	})
}

// ParticipantLeft implements space.Tap: the tile goes.
func (b *Broadcaster) ParticipantLeft(connectionID string) {
	b.post(func() {
		c := b.conns[connectionID]
		if c == nil {
			return
		}
		delete(b.conns, connectionID)
		b.keyframes.Delete(connectionID)
		b.views.Delete(connectionID)
		if c.screen != "" {
			b.keyframes.Delete(c.screen)
			b.views.Delete(c.screen)
			b.warn("remove screenshare", b.c.Remove(c.screen))
			b.warn("screenshare", b.c.SetScreenshare(""))
		}
		if c.tile {
			b.warn("remove tile", b.c.Remove(connectionID))
		}
	})
}

// ActiveSpeaker implements space.Tap.
func (b *Broadcaster) ActiveSpeaker(connectionID string) {
	b.post(func() {
		if c := b.conns[connectionID]; connectionID == "" || (c != nil && c.tile) {
			b.warn("active speaker", b.c.SetActiveSpeaker(connectionID))
		}
	})
}
