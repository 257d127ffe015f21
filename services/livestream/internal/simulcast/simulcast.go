// Package simulcast pushes a live stream's source, as received (FLV tags: H.264/AAC, no
// re-encode), to its simulcast targets over RTMP or RTMPS while an encoder publishes.
//
// A Fanout belongs to one publisher connection of a live stream; it runs one pusher goroutine
// per target. The ingest hands it every tag with WriteTag, which never blocks: each pusher
// has a bounded queue, and a pusher that falls behind loses tags, then resumes at the next
// video keyframe preceded by the sequence headers. A pusher reconnects with exponential
// backoff (capped) and records its target's status (idle, starting, broadcasting, errored)
// in the store, which emits the target's events.
package simulcast

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// Statuses records a target's status (a *store.Store).
type Statuses interface {
	SetSimulcastTargetStatus(ctx context.Context, liveStreamID, id, status string) error
}

var _ Statuses = (*store.Store)(nil)

// Notifier is woken after a status change wrote events (the outbox relay).
type Notifier interface{ Notify() }

// Options configure the pushers of a service.
type Options struct {
	Statuses Statuses
	Relay    Notifier
	Logger   *slog.Logger
	// Dialer connects to targets; its Control must refuse forbidden addresses (ssrf.Guard.Dialer).
	Dialer *net.Dialer
	// TLS is the base configuration of rtmps:// targets (nil: system roots); ServerName is set per target.
	TLS *tls.Config
	// MinBackoff and MaxBackoff bound the wait between connection attempts (defaults 1s, 30s).
	MinBackoff, MaxBackoff time.Duration
	// Queue is each target's queue length in tags (default 1024, about 10 s of 30 fps video
	// with its audio).
	Queue int
}

// Fanout is the pushers of one publisher connection.
type Fanout struct {
	pushers []*pusher
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// only the ingest goroutine (WriteTag) touches these
	meta, videoSH, audioSH *flv.Tag
}

// Start starts one pusher per target. With no targets it returns nil (a nil Fanout ignores
// WriteTag and Stop).
func Start(o Options, liveStreamID string, targets []store.SimulcastTarget) *Fanout {
	if len(targets) == 0 {
		return nil
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(30*time.Second, o.MinBackoff)
	}
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fanout{cancel: cancel}
	for _, t := range targets {
		p := &pusher{o: o, liveStreamID: liveStreamID, target: t, q: make(chan flv.Tag, o.Queue),
			log: o.Logger.With("live_stream_id", liveStreamID, "simulcast_target_id", t.ID)}
		f.pushers = append(f.pushers, p)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			p.run(ctx)
		}()
	}
	return f
}

// WriteTag hands tag to every pusher without blocking.
func (f *Fanout) WriteTag(t flv.Tag) {
	if f == nil {
		return
	}
	key := false
	switch t.Type {
	case flv.TagScript:
		c := t
		f.meta = &c
	case flv.TagVideo:
		h, err := flv.ParseVideoHeader(t.Data)
		if err != nil {
			return
		}
		if h.PacketType == flv.AVCSequenceHeader && h.FrameType != flv.FrameInfo {
			c := t
			f.videoSH = &c
		}
		key = h.FrameType == flv.FrameKey && h.PacketType == flv.AVCNALU
	case flv.TagAudio:
		if h, err := flv.ParseAudioHeader(t.Data); err == nil && h.PacketType == 0 {
			c := t
			f.audioSH = &c
		}
	}
	for _, p := range f.pushers {
		if p.behind {
			// resume at a keyframe (or, audio-only, at once) with the headers first
			if !(key || f.videoSH == nil) {
				continue
			}
			if len(p.q)+4 > cap(p.q) {
				continue
			}
			for _, h := range []*flv.Tag{f.meta, f.videoSH, f.audioSH} {
				if h != nil {
					c := *h
					c.Timestamp = t.Timestamp
					p.q <- c
				}
			}
			p.behind = false
		}
		select {
		case p.q <- t:
		default:
			p.behind = true
			p.log.Warn("simulcast target is slow: dropping until the next keyframe")
		}
	}
}

// Stop ends every pusher (each closes its connection and sets its target idle) and waits.
func (f *Fanout) Stop() {
	if f == nil {
		return
	}
	f.cancel()
	f.wg.Wait()
}

type pusher struct {
	o            Options
	liveStreamID string
	target       store.SimulcastTarget
	q            chan flv.Tag
	log          *slog.Logger
	behind       bool // WriteTag's own: tags were dropped

	// the pusher goroutine's own: the headers it has seen, for a (re)connect
	meta, videoSH, audioSH *flv.Tag
	status                 string
}

func (p *pusher) setStatus(s string) {
	if p.status == s {
		return
	}
	p.status = s
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.o.Statuses.SetSimulcastTargetStatus(ctx, p.liveStreamID, p.target.ID, s); err != nil {
		if errors.Is(err, store.ErrTargetNotFound) { // its live stream was deleted meanwhile
			p.log.Debug("simulcast target gone", "status", s)
			return
		}
		p.log.Warn("recording the simulcast target's status", "status", s, "err", err)
		return
	}
	if p.o.Relay != nil {
		p.o.Relay.Notify()
	}
}

// publishURL is the URL the client publishes to: the target URL with its stream key as the
// last path segment.
func (p *pusher) publishURL() string {
	if p.target.StreamKey == nil {
		return p.target.URL
	}
	return strings.TrimSuffix(p.target.URL, "/") + "/" + *p.target.StreamKey
}

func (p *pusher) dial(ctx context.Context) (*rtmp.Client, error) {
	u, err := url.Parse(p.target.URL)
	if err != nil {
		return nil, err
	}
	tlsOn := strings.EqualFold(u.Scheme, "rtmps")
	port := u.Port()
	if port == "" {
		port = "1935"
		if tlsOn {
			port = "443"
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nc, err := p.o.Dialer.DialContext(dctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, err
	}
	if tlsOn {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if p.o.TLS != nil {
			cfg = p.o.TLS.Clone()
		}
		cfg.ServerName = u.Hostname()
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	return rtmp.PublishConn(dctx, nc, p.publishURL())
}

func (p *pusher) remember(t flv.Tag) {
	switch t.Type {
	case flv.TagScript:
		c := t
		p.meta = &c
	case flv.TagVideo:
		if h, err := flv.ParseVideoHeader(t.Data); err == nil && h.PacketType == flv.AVCSequenceHeader && h.FrameType != flv.FrameInfo {
			c := t
			p.videoSH = &c
		}
	case flv.TagAudio:
		if h, err := flv.ParseAudioHeader(t.Data); err == nil && h.PacketType == 0 {
			c := t
			p.audioSH = &c
		}
	}
}

// wait sleeps d while keeping the queue drained (and the headers current); false: stopped.
func (p *pusher) wait(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case t := <-p.q:
			p.remember(t)
		}
	}
}

func (p *pusher) run(ctx context.Context) {
	defer p.setStatus(store.TargetIdle)
	backoff := p.o.MinBackoff
	for ctx.Err() == nil {
		p.setStatus(store.TargetStarting)
		c, err := p.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("simulcast target: connecting", "err", err, "retry_in", backoff)
			p.setStatus(store.TargetErrored)
			if !p.wait(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, p.o.MaxBackoff)
			continue
		}
		started := time.Now()
		err = p.push(ctx, c)
		if ctx.Err() != nil {
			_ = c.Conn().SetWriteDeadline(time.Now().Add(2 * time.Second))
			_ = c.Close()
			return
		}
		_ = c.Abort()
		if time.Since(started) > p.o.MaxBackoff {
			backoff = p.o.MinBackoff // it had been working: start over
		}
		p.log.Warn("simulcast target: connection lost", "err", err, "retry_in", backoff)
		p.setStatus(store.TargetErrored)
		if !p.wait(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, p.o.MaxBackoff)
	}
}

var errStopped = errors.New("stopped")

// push sends the headers it knows, then the queue from the next video keyframe on (at once
// for audio only), until the connection fails or ctx ends.
func (p *pusher) push(ctx context.Context, c *rtmp.Client) error {
	nc := c.Conn()
	stop := context.AfterFunc(ctx, func() { _ = nc.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	go func() { _, _ = io.Copy(io.Discard, nc) }() // acknowledgements and the like; ends when nc closes
	waitKey := true
	sentHeaders := false
	for {
		var t flv.Tag
		select {
		case <-ctx.Done():
			return errStopped
		case t = <-p.q:
		}
		p.remember(t)
		if waitKey {
			key := false
			if t.Type == flv.TagVideo {
				h, err := flv.ParseVideoHeader(t.Data)
				key = err == nil && h.FrameType == flv.FrameKey && h.PacketType == flv.AVCNALU
			}
			if !key && !(p.videoSH == nil && p.audioSH != nil && t.Type == flv.TagAudio) {
				continue
			}
			waitKey = false
		}
		if !sentHeaders {
			for _, h := range []*flv.Tag{p.meta, p.videoSH, p.audioSH} {
				if h != nil {
					c2 := *h
					c2.Timestamp = t.Timestamp
					if err := c.WriteTag(c2); err != nil {
						return err
					}
				}
			}
			sentHeaders = true
		}
		if err := c.WriteTag(t); err != nil {
			return err
		}
		if len(p.q) == 0 {
			_ = nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.Flush(); err != nil {
				return err
			}
			p.setStatus(store.TargetBroadcasting)
		}
	}
}
