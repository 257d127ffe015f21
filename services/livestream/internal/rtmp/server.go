// Package rtmp is an RTMP ingest server (publish only) written from Adobe's RTMP specification
// (2012) and the AMF0 specification: plain handshake, chunk streams with all four header types
// and extended timestamps, protocol control messages, and the NetConnection/NetStream commands
// encoders (OBS, ffmpeg) use to publish. Media is handed to a Handler as FLV tags.
package rtmp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
)

// Config configures a Server. Zero values get the defaults in parentheses.
type Config struct {
	Logger  *slog.Logger // required
	Handler Handler      // required
	// IdleTimeout: a publishing connection that sends nothing for this long is dropped (10s).
	IdleTimeout time.Duration
	// HandshakeTimeout: the handshake must be done this long after accept (5s). It is a fixed
	// deadline: bytes trickling in do not extend it.
	HandshakeTimeout time.Duration
	// PublishTimeout: a publish must be accepted this long after accept (10s), else the
	// connection is closed, whatever it sends meanwhile. Not shorter than HandshakeTimeout.
	// After a publish ends (FCUnpublish, deleteStream) on a connection that stays open, the
	// next publish must come within PublishTimeout again.
	PublishTimeout time.Duration
	// MaxConnections limits open connections; over it a new connection is closed at once.
	// 0 = unlimited.
	MaxConnections int
	// MaxConnectionsPerIP limits the open connections of one remote address (IPv6: of one
	// /64); over it a new connection is closed at once (64). -1 = unlimited.
	MaxConnectionsPerIP int
	// PrePublishBuffer: until its publish is accepted a connection may buffer this many bytes
	// of partly received messages in total, which also caps each message (256 KiB).
	PrePublishBuffer int
	// MaxMessageSize caps one message (a video frame, an aggregate) of a publishing
	// connection; its partly received messages together may take twice this (8 MiB; at most
	// 16 MiB - 1, the format's limit).
	MaxMessageSize int
	// MemoryBudget caps the bytes of partly received messages of all connections together
	// (256 MiB); connections without an accepted publish may use at most half of it. A
	// connection whose message does not fit is closed.
	MemoryBudget int64
	// Registerer, if set, gets the server's metrics (spacecast_rtmp_*).
	Registerer prometheus.Registerer
	// ReadCoalesce: while publishing, a socket read that returned little (less than half the
	// read buffer) is followed by the next one no sooner than this (40 ms), so that one read
	// takes a few frames' worth of data instead of waking the connection for each packet the
	// encoder flushed. It adds at most this much delay; a fast stream that fills the buffer is
	// read at once. -1 = off. Not applied to RTMPS: a *tls.Conn returns one TLS record per
	// read, so reads look short however much is queued, and pausing after each would read
	// slower than the encoder sends (a killed encoder's end then comes only after the backlog).
	ReadCoalesce time.Duration
}

// Defaults of Config.
const (
	DefaultIdleTimeout         = 10 * time.Second
	DefaultHandshakeTimeout    = 5 * time.Second
	DefaultPublishTimeout      = 10 * time.Second
	DefaultMaxConnectionsPerIP = 64
	DefaultPrePublishBuffer    = 256 << 10
	DefaultMaxMessageSize      = 8 << 20
	DefaultMemoryBudget        = 256 << 20
	DefaultReadCoalesce        = 40 * time.Millisecond
	maxMessageLimit            = 1<<24 - 1
)

// Handler decides about publishes.
type Handler interface {
	// Publish is called when a client issues `publish`, before NetStream.Publish.Start is sent.
	// req.StreamKey is the publish name with any "?query" stripped; if the publish name is empty
	// the last segment of the connect app path is used. Returning an error refuses the publish:
	// the server sends onStatus level "error" (code from *StatusError if the error is or wraps
	// one, else NetStream.Publish.BadName; description = the error text) and closes the
	// connection. ctx is cancelled when the connection ends.
	Publish(ctx context.Context, req PublishRequest) (Stream, error)
}

// PublishRequest describes a publish.
type PublishRequest struct {
	App         string // connect's app, "?query" stripped
	StreamKey   string // last path segment of the publish name without "?query" (or of App when empty)
	TCURL       string // connect's tcUrl as sent
	RemoteAddr  string // peer "ip:port"
	PublishName string // the publish name as sent
	PublishType string // "live" (default), "record" or "append" as sent
	TLS         bool   // the connection is RTMPS (a *tls.Conn from the listener)
	// Close closes the connection; safe from any goroutine and any number of times. The Stream
	// then gets Close(ErrKicked).
	Close func()
}

// Stream receives one publish's media.
type Stream interface {
	// WriteTag gets every audio (8), video (9) and script-data (18) message as an FLV tag, in
	// arrival order, from the connection's goroutine. Timestamp is in ms, unwrapped to 64 bits
	// (extended timestamps and the 32-bit wrap handled). tag.Data is owned by the callee,
	// unless it is a TagKeeper that says it kept nothing of it.
	// A returned error closes the connection (and then Close is called with it).
	WriteTag(tag flv.Tag) error
	// Close is called exactly once when the publish ends: nil after FCUnpublish/deleteStream,
	// else the cause (io.EOF, a timeout, a protocol error, ErrKicked, context.Canceled, or the
	// error WriteTag returned).
	Close(cause error)
}

// TagKeeper is a Stream that tells, after each WriteTag, whether it kept tag.Data (or part
// of it) past the call. When it did not, the connection reads a later message into the same
// memory instead of allocating a payload per frame. A Stream without it owns every tag.Data.
type TagKeeper interface {
	Stream
	KeptTagData() bool
}

// StatusError lets Handler.Publish choose the onStatus code of a refusal, e.g.
// NetStream.Publish.BadName or NetStream.Publish.BadConnection.
type StatusError struct {
	Code, Description string
}

func (e *StatusError) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Description
}

// Server accepts RTMP publishers.
type Server struct {
	cfg    Config
	log    *slog.Logger
	start  time.Time
	conns  connTable
	budget memBudget
	stats  counters
}

// NewServer checks cfg and fills in defaults.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Logger == nil || cfg.Handler == nil {
		return nil, errors.New("rtmp: Config.Logger and Config.Handler are required")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.PublishTimeout < cfg.HandshakeTimeout {
		return nil, fmt.Errorf("rtmp: Config.PublishTimeout (%v) is shorter than HandshakeTimeout (%v)", cfg.PublishTimeout, cfg.HandshakeTimeout)
	}
	if cfg.MaxConnections < 0 {
		return nil, errors.New("rtmp: Config.MaxConnections must not be negative")
	}
	switch {
	case cfg.MaxConnectionsPerIP == 0:
		cfg.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	case cfg.MaxConnectionsPerIP < -1:
		return nil, errors.New("rtmp: Config.MaxConnectionsPerIP must be -1 (unlimited), 0 (default) or more")
	}
	if cfg.PrePublishBuffer == 0 {
		cfg.PrePublishBuffer = DefaultPrePublishBuffer
	}
	if cfg.PrePublishBuffer < 1<<10 || cfg.PrePublishBuffer > maxMessageLimit {
		return nil, fmt.Errorf("rtmp: Config.PrePublishBuffer %d: want 1 KiB to 16 MiB", cfg.PrePublishBuffer)
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxMessageSize < 64<<10 || cfg.MaxMessageSize > maxMessageLimit {
		return nil, fmt.Errorf("rtmp: Config.MaxMessageSize %d: want 64 KiB to 16 MiB - 1", cfg.MaxMessageSize)
	}
	if cfg.MemoryBudget == 0 {
		cfg.MemoryBudget = DefaultMemoryBudget
	}
	if cfg.ReadCoalesce == 0 {
		cfg.ReadCoalesce = DefaultReadCoalesce
	}
	if cfg.ReadCoalesce > time.Second {
		return nil, fmt.Errorf("rtmp: Config.ReadCoalesce %v: want at most 1s (-1 = off)", cfg.ReadCoalesce)
	}
	if cfg.MemoryBudget < int64(cfg.MaxMessageSize) {
		return nil, fmt.Errorf("rtmp: Config.MemoryBudget %d is less than MaxMessageSize %d", cfg.MemoryBudget, cfg.MaxMessageSize)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, start: time.Now(), conns: connTable{perIP: make(map[netip.Prefix]int)}}
	s.budget.limit = cfg.MemoryBudget
	if cfg.Registerer != nil {
		if err := s.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ConnCount is the number of open connections.
func (s *Server) ConnCount() int { return s.conns.count() }

// Serve accepts connections on ln until ctx is done (then it returns nil) or ln fails (then it
// returns the error). Before returning it closes ln and every connection and waits for their
// goroutines, so every Stream has been closed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	backoff := time.Duration(0)
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			ln.Close()
			return fmt.Errorf("rtmp: accept: %w", err)
		}
		backoff = 0
		accepted := time.Now()
		key := addrKey(nc.RemoteAddr())
		switch s.conns.add(key, s.cfg.MaxConnections, s.cfg.MaxConnectionsPerIP) {
		case overTotal:
			s.stats.refusedTotal.note(s.log, slog.LevelWarn, "rtmp: connection limit reached, closing new connection", "remote", nc.RemoteAddr().String(), "limit", s.cfg.MaxConnections)
			nc.Close()
			continue
		case overPerIP:
			s.stats.refusedPerIP.note(s.log, slog.LevelWarn, "rtmp: per-address connection limit reached, closing new connection", "remote", nc.RemoteAddr().String(), "address", key.String(), "limit", s.cfg.MaxConnectionsPerIP)
			nc.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.conns.remove(key)
			c := newConn(s, nc, accepted)
			c.serve(ctx)
		}()
	}
}

// deadlineConn sets read deadlines: the idle timeout from the last read, never past hard
// (when set); it counts bytes read.
type deadlineConn struct {
	net.Conn
	idle      time.Duration
	hard      time.Time // zero: none
	refreshAt time.Time
	bytesIn   uint64
	// coalesce > 0: a read that returned less than half of its buffer is followed by the
	// next no sooner than coalesce after it (Config.ReadCoalesce).
	coalesce time.Duration
	lastRead time.Time
	lastN    int
	reads    uint64
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	now := time.Now()
	if c.coalesce > 0 && c.lastN < len(p)/2 {
		if wait := c.coalesce - now.Sub(c.lastRead); wait > 0 {
			time.Sleep(wait)
			now = time.Now()
		}
	}
	if now.After(c.refreshAt) {
		d := now.Add(c.idle)
		if !c.hard.IsZero() && c.hard.Before(d) {
			d = c.hard
		}
		if err := c.Conn.SetReadDeadline(d); err != nil {
			return 0, err
		}
		c.refreshAt = now.Add(min(c.idle/10, time.Second))
	}
	n, err := c.Conn.Read(p)
	c.bytesIn += uint64(n)
	c.reads++
	c.lastRead, c.lastN = now, n
	return n, err
}

// setHard changes the fixed deadline (zero: none) from the next read on.
func (c *deadlineConn) setHard(t time.Time) {
	c.hard = t
	c.refreshAt = time.Time{}
}

type conn struct {
	s        *Server
	nc       net.Conn
	ic       *deadlineConn
	remote   string
	log      *slog.Logger
	accepted time.Time
	phase    phase // what the hard deadline is for

	br *bufio.Reader
	bw *bufio.Writer
	cr *ChunkReader
	cw *ChunkWriter

	ctx    context.Context
	kicked atomic.Bool
	close  func()

	// protocol state
	connected    bool
	app, tcURL   string
	objEncoding  float64
	peerWindow   uint32 // ack after this many bytes from the peer
	lastAck      uint64
	ourWindow    uint32 // window we announced
	nextStreamID uint32

	// publishing
	stream     Stream
	streamID   uint32
	ts         flv.Unwrapper
	tagCount   uint64
	publishKey string
}

const (
	serverWindow     = 2500000
	serverChunkSize  = 4096
	writeTimeout     = 10 * time.Second
	csidControl      = 2
	csidCommand      = 3
	csidStreamStatus = 5
)

func newConn(s *Server, nc net.Conn, accepted time.Time) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String(), accepted: accepted, peerWindow: serverWindow, nextStreamID: 1}
	c.log = s.log.With("remote", c.remote)
	var once sync.Once
	c.close = func() {
		once.Do(func() {
			c.kicked.Store(true)
			nc.Close()
		})
	}
	return c
}

// errClean ends a connection without an error (after a refusal or play attempt).
var errClean = errors.New("rtmp: connection done")

func (c *conn) serve(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	c.ctx = ctx
	stop := context.AfterFunc(ctx, func() { c.nc.Close() })
	var cause error
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("rtmp: panic in connection", "panic", r, "stack", string(debug.Stack()))
			cause = fmt.Errorf("rtmp: internal error: %v", r)
		}
		c.endPublish(cause)
		if c.cr != nil {
			c.cr.Release() // partial messages go back to the budget (and to the GC)
		}
		stop()
		cancel()
		c.nc.Close()
	}()

	c.ic = &deadlineConn{Conn: c.nc, idle: c.s.cfg.IdleTimeout}
	c.ic.setHard(c.accepted.Add(c.s.cfg.HandshakeTimeout))
	c.phase = phaseHandshake
	c.br = bufio.NewReaderSize(c.ic, 64<<10)
	c.bw = bufio.NewWriterSize(c.nc, 4<<10)
	if err := c.nc.SetWriteDeadline(c.ic.hard); err != nil {
		cause = err
		return
	}
	if err := serverHandshake(rwPair{c.br, c.nc}, uint32(time.Since(c.s.start).Milliseconds())); err != nil {
		if !c.cut(err) {
			c.log.Debug("rtmp: handshake failed", "err", err)
		}
		cause = err
		return
	}
	c.cr = NewChunkReader(c.br)
	c.cw = NewChunkWriter(c.bw)
	c.awaitPublish(c.accepted)
	for {
		m, err := c.cr.ReadMessage()
		if err == nil {
			err = c.handle(m)
		}
		if err == nil {
			err = c.maybeAck()
		}
		if err == nil && c.bw.Buffered() > 0 {
			err = c.flush()
		}
		if err != nil {
			switch {
			case errors.Is(err, errClean):
				err = nil
			case c.cut(err):
			case errors.Is(err, ErrMessageTooLarge):
				c.s.stats.cutMessageTooLarge.note(c.log, slog.LevelWarn, "rtmp: message over the limit, connection closed", "publishing", c.stream != nil, "err", err)
			case errors.Is(err, ErrBufferLimit):
				c.s.stats.cutBufferLimit.note(c.log, slog.LevelWarn, "rtmp: connection buffer limit reached, connection closed", "publishing", c.stream != nil, "err", err)
			case errors.Is(err, ErrMemoryBudget):
				c.s.stats.cutMemoryBudget.note(c.log, slog.LevelWarn, "rtmp: ingest memory budget used up, connection closed", "publishing", c.stream != nil,
					"buffered", c.s.budget.buffered(), "budget", c.s.cfg.MemoryBudget, "err", err)
			case c.stream == nil:
				c.log.Debug("rtmp: connection ended", "err", err)
			}
			cause = err
			return
		}
	}
}

// phase is what a connection's fixed deadline is for.
type phase uint8

const (
	phaseHandshake  phase = iota
	phasePublish          // handshake done, no publish accepted yet
	phasePublishing       // only the idle timeout applies
)

// awaitPublish puts the connection in the pre-publish state: a publish must be accepted by
// from+PublishTimeout, and the pre-publish buffer limits apply.
func (c *conn) awaitPublish(from time.Time) {
	if c.phase == phasePublishing {
		c.s.budget.move(int64(c.cr.Buffered()), true)
	}
	c.phase = phasePublish
	c.ic.coalesce = 0 // commands before a publish are answered at once
	c.ic.setHard(from.Add(c.s.cfg.PublishTimeout))
	_ = c.setWriteDeadline() // a failure shows on the next write
	c.cr.SetLimits(ReadLimits{MaxMessage: uint32(c.s.cfg.PrePublishBuffer), MaxBuffered: c.s.cfg.PrePublishBuffer, Budget: c})
}

// published lifts the fixed deadline and applies the publishing limits.
func (c *conn) published() {
	c.s.budget.move(int64(c.cr.Buffered()), false)
	c.phase = phasePublishing
	c.ic.setHard(time.Time{})
	c.ic.coalesce = max(c.s.cfg.ReadCoalesce, 0)
	if _, isTLS := c.nc.(*tls.Conn); isTLS {
		c.ic.coalesce = 0 // one record per read: see Config.ReadCoalesce
	}
	_ = c.setWriteDeadline()
	c.cr.SetLimits(ReadLimits{MaxMessage: uint32(c.s.cfg.MaxMessageSize), MaxBuffered: 2 * c.s.cfg.MaxMessageSize, Budget: c})
}

// cut tells whether err is the fixed deadline of the current phase passing, and counts it.
func (c *conn) cut(err error) bool {
	if c.phase == phasePublishing || !errors.Is(err, os.ErrDeadlineExceeded) || time.Now().Before(c.ic.hard) {
		return false
	}
	if c.phase == phaseHandshake {
		c.s.stats.cutHandshakeTimeout.note(c.log, slog.LevelInfo, "rtmp: handshake not done in time, connection closed", "timeout", c.s.cfg.HandshakeTimeout)
	} else {
		c.s.stats.cutPublishTimeout.note(c.log, slog.LevelInfo, "rtmp: no publish in time, connection closed", "timeout", c.s.cfg.PublishTimeout)
	}
	return true
}

var _ Budget = (*conn)(nil)

// Reserve charges the server's memory budget.
func (c *conn) Reserve(n int) bool { return c.s.budget.reserve(int64(n), c.phase != phasePublishing) }

// Release gives bytes back to the server's memory budget.
func (c *conn) Release(n int) { c.s.budget.release(int64(n), c.phase != phasePublishing) }

type rwPair struct {
	r *bufio.Reader
	w net.Conn
}

func (p rwPair) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p rwPair) Write(b []byte) (int, error) { return p.w.Write(b) }

// setWriteDeadline gives writes writeTimeout, never past the fixed deadline.
func (c *conn) setWriteDeadline() error {
	d := time.Now().Add(writeTimeout)
	if !c.ic.hard.IsZero() && c.ic.hard.Before(d) {
		d = c.ic.hard
	}
	return c.nc.SetWriteDeadline(d)
}

func (c *conn) flush() error {
	if err := c.setWriteDeadline(); err != nil {
		return err
	}
	return c.bw.Flush()
}

// endPublish closes the current Stream, if any, with the right cause.
func (c *conn) endPublish(cause error) {
	if c.stream == nil {
		return
	}
	st := c.stream
	c.stream = nil
	switch {
	case cause == nil:
	case c.kicked.Load():
		cause = ErrKicked
	case c.ctx.Err() != nil && !errors.Is(cause, errClean):
		cause = context.Canceled
	}
	if cause != nil {
		c.log.Info("rtmp: publish ended", "app", c.app, "cause", cause.Error(), "tags", c.tagCount)
	} else {
		c.log.Info("rtmp: publish ended cleanly", "app", c.app, "tags", c.tagCount)
	}
	st.Close(cause)
	if c.phase == phasePublishing {
		// The connection may stay open for another publish: it is unauthenticated again.
		c.awaitPublish(time.Now())
	}
}

func (c *conn) maybeAck() error {
	in := c.ic.bytesIn
	if c.peerWindow == 0 || in-c.lastAck < uint64(c.peerWindow) {
		return nil
	}
	c.lastAck = in
	return c.sendControl(MsgAck, be32(uint32(in)))
}

func be32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

func (c *conn) sendControl(typ uint8, payload []byte) error {
	return c.cw.WriteMessage(Message{CSID: csidControl, Type: typ, Payload: payload})
}

func (c *conn) handle(m Message) error {
	switch m.Type {
	case MsgAudio, MsgVideo:
		st := c.stream
		if err := c.media(m.Type, m.Timestamp, m.Payload); err != nil {
			return err
		}
		if k, ok := st.(TagKeeper); st == nil || (ok && !k.KeptTagData()) {
			c.cr.Recycle(m) // dropped, or the stream is done with it
		}
		return nil
	case MsgDataAMF0:
		return c.data(m.Timestamp, m.Payload)
	case MsgCommandAMF0:
		return c.command(m, m.Payload)
	case MsgCommandAMF3:
		p := m.Payload
		if len(p) > 0 && p[0] == 0 { // AMF3 command messages start with a format byte, then AMF0
			p = p[1:]
		}
		return c.command(m, p)
	case MsgAggregate:
		return c.aggregate(m)
	case MsgWindowAckSize:
		if len(m.Payload) < 4 {
			return fmt.Errorf("%w: short Window Acknowledgement Size", ErrProtocol)
		}
		c.peerWindow = beUint32(m.Payload)
	case MsgSetPeerBandwidth:
		if len(m.Payload) < 4 {
			return fmt.Errorf("%w: short Set Peer Bandwidth", ErrProtocol)
		}
		if w := beUint32(m.Payload); w != c.ourWindow && w > 0 {
			c.ourWindow = w
			return c.sendControl(MsgWindowAckSize, be32(w))
		}
	case MsgUserControl:
		if len(m.Payload) >= 6 && m.Payload[0] == 0 && m.Payload[1] == 6 { // PingRequest
			return c.sendControl(MsgUserControl, append([]byte{0, 7}, m.Payload[2:6]...))
		}
	}
	// Set Chunk Size and Abort were applied by the chunk reader; Acknowledgement, shared
	// objects and AMF3 data are ignored.
	return nil
}

func beUint32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (c *conn) media(typ uint8, ts uint32, payload []byte) error {
	if c.stream == nil {
		return nil // media outside a publish is dropped
	}
	c.tagCount++
	if err := c.stream.WriteTag(flv.Tag{Type: typ, Timestamp: c.ts.Next(ts), Data: payload}); err != nil {
		// A refusal the handler worded (e.g. an unsupported codec) reaches the encoder as an
		// error status before the connection closes.
		var se *StatusError
		if errors.As(err, &se) {
			if serr := c.sendStatus(c.streamID, "error", se.Code, se.Description); serr == nil {
				_ = c.flush()
			}
		}
		return fmt.Errorf("rtmp: stream refused media: %w", err)
	}
	return nil
}

// data forwards script data; "@setDataFrame" is stripped so the tag reads onMetaData, ...
func (c *conn) data(ts uint32, payload []byte) error {
	if c.stream == nil {
		return nil
	}
	v, n, err := DecodeAMF0Value(payload)
	if err != nil {
		c.log.Debug("rtmp: undecodable data message dropped", "err", err)
		return nil
	}
	switch v {
	case "@setDataFrame":
		payload = payload[n:]
	case "@clearDataFrame":
		return nil
	}
	return c.media(MsgDataAMF0, ts, payload)
}

// aggregate splits an aggregate message into its FLV-tag-like sub-messages.
func (c *conn) aggregate(m Message) error {
	p := m.Payload
	var base uint32
	for first := true; len(p) > 0; first = false {
		if len(p) < 11 {
			return fmt.Errorf("%w: truncated aggregate message", ErrProtocol)
		}
		typ := p[0] & 0x1f
		size := int(uint24(p[1:4]))
		ts := uint24(p[4:7]) | uint32(p[7])<<24
		if len(p) < 11+size+4 {
			return fmt.Errorf("%w: aggregate sub-message of %d bytes past the end", ErrProtocol, size)
		}
		if first {
			base = ts
		}
		body := p[11 : 11+size : 11+size]
		at := m.Timestamp + (ts - base)
		var err error
		switch typ {
		case MsgAudio, MsgVideo:
			err = c.media(typ, at, body)
		case MsgDataAMF0:
			err = c.data(at, body)
		}
		if err != nil {
			return err
		}
		p = p[11+size+4:]
	}
	return nil
}
