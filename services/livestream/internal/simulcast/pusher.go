// Package simulcast pushes a live stream's source, as received (FLV tags: H.264/AAC, no
// re-encode), to a third-party RTMP or RTMPS server. One Pusher per target; each runs one
// goroutine that connects, publishes, sends the stream from its sequence headers and the next
// keyframe on, and reconnects with capped exponential backoff. Write never blocks the caller
// (the ingest): tags go through a bounded queue, and when it is full they are dropped and the
// target resynchronises at the next keyframe.
package simulcast

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
)

// Status is a target's state, as Mux names it.
type Status string

// Target statuses.
const (
	Idle         Status = "idle"
	Starting     Status = "starting"
	Broadcasting Status = "broadcasting"
	Errored      Status = "errored"
)

// Dialer opens the TCP connection to a target; ssrf.Guard.Dialer returns one that refuses
// internal addresses at connect time.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

var _ Dialer = (*net.Dialer)(nil)

// Config configures a Pusher.
type Config struct {
	URL        *url.URL      // from ParseURL: rtmp(s)://host[:port]/app/key
	Dialer     Dialer        // required
	TLS        *tls.Config   // base for rtmps:// (RootCAs etc.); ServerName is set from the host
	QueueSize  int           // tags buffered for a slow target; default 1024
	MinBackoff time.Duration // first reconnect delay; default 1s
	MaxBackoff time.Duration // cap; default 30s
	Timeout    time.Duration // connect+publish, and each write; default 10s
	// OnStatus is called on the pusher's goroutine at every change (err is set for Errored).
	// It must not block for long.
	OnStatus func(Status, error)
	Log      *slog.Logger
}

type item struct {
	tag    flv.Tag
	resync bool // tags were dropped just before this one
}

// Pusher sends one live stream to one target.
type Pusher struct {
	cfg    Config
	q      chan item
	cancel context.CancelFunc
	done   chan struct{}

	gap bool // Write's own: a tag was dropped since the last queued one

	mu      sync.Mutex
	meta    *flv.Tag // latest onMetaData
	videoSH *flv.Tag // latest AVC sequence header
	audioSH *flv.Tag // latest AAC sequence header
	dropped int64
	stopped bool
}

// New starts a pusher's goroutine. Stop it with Stop.
func New(cfg Config) (*Pusher, error) {
	if cfg.URL == nil || (cfg.URL.Scheme != "rtmp" && cfg.URL.Scheme != "rtmps") {
		return nil, fmt.Errorf("%w: need an rtmp:// or rtmps:// URL", ErrBadURL)
	}
	if cfg.Dialer == nil {
		return nil, errors.New("simulcast: Config.Dialer is required")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.OnStatus == nil {
		cfg.OnStatus = func(Status, error) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pusher{cfg: cfg, q: make(chan item, cfg.QueueSize), cancel: cancel, done: make(chan struct{})}
	go p.run(ctx)
	return p, nil
}

// Write hands one source tag to the pusher without blocking. Call it from one goroutine (the
// ingest's), with tags whose Data is not reused afterwards. A tag that does not fit in the
// queue is dropped; the target then waits for the next keyframe.
func (p *Pusher) Write(t flv.Tag) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return ErrStopped
	}
	switch kind(t) {
	case kindMeta:
		p.meta = &t
	case kindVideoSH:
		p.videoSH = &t
	case kindAudioSH:
		p.audioSH = &t
	}
	p.mu.Unlock()
	select {
	case p.q <- item{tag: t, resync: p.gap}:
		p.gap = false
	default:
		p.gap = true
		p.mu.Lock()
		p.dropped++
		p.mu.Unlock()
	}
	return nil
}

// Dropped is how many tags were dropped because the target was slow or disconnected.
func (p *Pusher) Dropped() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// Stop ends the publish, closes the connection and waits for the goroutine; the last status
// reported is Idle.
func (p *Pusher) Stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.cancel()
	<-p.done
}

type tagKind int

const (
	kindOther tagKind = iota
	kindMeta
	kindVideoSH
	kindAudioSH
	kindKeyframe
	kindVideo
	kindAudio
)

func kind(t flv.Tag) tagKind {
	switch t.Type {
	case flv.TagScript:
		return kindMeta
	case flv.TagVideo:
		h, err := flv.ParseVideoHeader(t.Data)
		if err != nil {
			return kindOther
		}
		switch {
		case h.FrameType == flv.FrameInfo:
			return kindOther
		case h.PacketType == flv.AVCSequenceHeader:
			return kindVideoSH
		case h.FrameType == flv.FrameKey && h.PacketType == flv.AVCNALU:
			return kindKeyframe
		}
		return kindVideo
	case flv.TagAudio:
		if h, err := flv.ParseAudioHeader(t.Data); err == nil && h.PacketType == 0 {
			return kindAudioSH
		}
		return kindAudio
	}
	return kindOther
}

func (p *Pusher) run(ctx context.Context) {
	defer close(p.done)
	defer p.cfg.OnStatus(Idle, nil)
	backoff := p.cfg.MinBackoff
	for {
		p.cfg.OnStatus(Starting, nil)
		broadcast, err := p.session(ctx)
		if ctx.Err() != nil {
			return
		}
		p.cfg.Log.Warn("simulcast target failed", "url", redact(p.cfg.URL), "err", err, "retry_in", backoff)
		p.cfg.OnStatus(Errored, err)
		if broadcast >= 10*time.Second {
			backoff = p.cfg.MinBackoff
		}
		t := time.NewTimer(backoff)
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-p.q: // stale while disconnected: the next session starts at a keyframe
			case <-t.C:
				break wait
			}
		}
		backoff = min(backoff*2, p.cfg.MaxBackoff)
	}
}

// redact drops the stream key (the last path segment) from logs.
func redact(u *url.URL) string { return u.Scheme + "://" + u.Host }

// deadlineConn gives every write its own deadline, so a target that stops reading fails the
// session instead of blocking it forever.
type deadlineConn struct {
	net.Conn
	d time.Duration
}

func (c deadlineConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.d)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// session connects, publishes and sends until ctx ends (nil error) or the target fails. It
// returns how long it was broadcasting.
func (p *Pusher) session(ctx context.Context) (time.Duration, error) {
	cctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	host := p.cfg.URL.Host
	if p.cfg.URL.Port() == "" {
		port := "1935"
		if p.cfg.URL.Scheme == "rtmps" {
			port = "443"
		}
		host = net.JoinHostPort(p.cfg.URL.Hostname(), port)
	}
	nc, err := p.cfg.Dialer.DialContext(cctx, "tcp", host)
	if err != nil {
		return 0, err
	}
	raw := nc
	if p.cfg.URL.Scheme == "rtmps" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if p.cfg.TLS != nil {
			tc = p.cfg.TLS.Clone()
		}
		tc.ServerName = p.cfg.URL.Hostname()
		t := tls.Client(nc, tc)
		if err := t.HandshakeContext(cctx); err != nil {
			nc.Close()
			return 0, fmt.Errorf("tls: %w", err)
		}
		nc = t
	}
	c, err := rtmp.PublishConn(cctx, deadlineConn{Conn: nc, d: p.cfg.Timeout}, p.cfg.URL.String())
	if err != nil {
		return 0, err
	}
	cancel()
	// On Stop the loop below unpublishes cleanly; a write stuck on a target that stopped
	// reading is cut after a short grace.
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(2*time.Second, func() { _ = raw.Close() }) })
	defer stop()

	// Start fresh: what queued while connecting is stale.
	for drained := false; !drained; {
		select {
		case <-p.q:
		default:
			drained = true
		}
	}
	p.mu.Lock()
	headers := make([]flv.Tag, 0, 3)
	for _, t := range []*flv.Tag{p.meta, p.videoSH, p.audioSH} {
		if t != nil {
			headers = append(headers, *t)
		}
	}
	hasVideo := p.videoSH != nil
	p.mu.Unlock()
	for _, t := range headers {
		if err := c.WriteTag(t); err != nil {
			return 0, p.fail(ctx, c, err)
		}
	}
	needKey := true
	var since time.Time
	for {
		var it item
		select {
		case <-ctx.Done():
			return broadcastFor(since), c.Close()
		case it = <-p.q:
		}
		k := kind(it.tag)
		if it.resync {
			needKey = true
		}
		if k == kindVideoSH {
			hasVideo = true
		}
		if needKey && hasVideo {
			switch k {
			case kindKeyframe:
				needKey = false
			case kindVideo, kindAudio:
				continue
			}
		}
		if err := c.WriteTag(it.tag); err != nil {
			return broadcastFor(since), p.fail(ctx, c, err)
		}
		if len(p.q) == 0 {
			if err := c.Flush(); err != nil {
				return broadcastFor(since), p.fail(ctx, c, err)
			}
			if since.IsZero() && !needKey {
				since = time.Now()
				p.cfg.OnStatus(Broadcasting, nil)
			}
		}
	}
}

func broadcastFor(since time.Time) time.Duration {
	if since.IsZero() {
		return 0
	}
	return time.Since(since)
}

func (p *Pusher) fail(ctx context.Context, c *rtmp.Client, err error) error {
	_ = c.Abort()
	if ctx.Err() != nil {
		return nil
	}
	return err
}
