// Package rtmp is an RTMP ingest server (publish only) written from Adobe's RTMP specification
// (2012) and the AMF0 specification: plain handshake, chunk streams with all four header types
// and extended timestamps, protocol control messages, and the NetConnection/NetStream commands
// encoders (OBS, ffmpeg) use to publish. Media is handed to a Handler as FLV tags.
package rtmp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
)

// Config configures a Server.
type Config struct {
	Logger  *slog.Logger // required
	Handler Handler      // required
	// IdleTimeout: a connection that sends nothing for this long is dropped (default 10s).
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the whole handshake (default 5s).
	HandshakeTimeout time.Duration
	// MaxConnections limits open connections; over it a new connection is closed at once.
	// 0 = unlimited.
	MaxConnections int
}

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
	// Close closes the connection; safe from any goroutine and any number of times. The Stream
	// then gets Close(ErrKicked).
	Close func()
}

// Stream receives one publish's media.
type Stream interface {
	// WriteTag gets every audio (8), video (9) and script-data (18) message as an FLV tag, in
	// arrival order, from the connection's goroutine. Timestamp is in ms, unwrapped to 64 bits
	// (extended timestamps and the 32-bit wrap handled). tag.Data is owned by the callee.
	// A returned error closes the connection (and then Close is called with it).
	WriteTag(tag flv.Tag) error
	// Close is called exactly once when the publish ends: nil after FCUnpublish/deleteStream,
	// else the cause (io.EOF, a timeout, a protocol error, ErrKicked, context.Canceled, or the
	// error WriteTag returned).
	Close(cause error)
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

// ErrKicked is the Stream.Close cause after PublishRequest.Close was called.
var ErrKicked = errors.New("rtmp: connection closed by the server")

// Server accepts RTMP publishers.
type Server struct {
	cfg   Config
	log   *slog.Logger
	start time.Time
	conns atomic.Int64
}

// NewServer checks cfg and fills in defaults.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Logger == nil || cfg.Handler == nil {
		return nil, errors.New("rtmp: Config.Logger and Config.Handler are required")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.MaxConnections < 0 {
		return nil, errors.New("rtmp: Config.MaxConnections must not be negative")
	}
	return &Server{cfg: cfg, log: cfg.Logger, start: time.Now()}, nil
}

// ConnCount is the number of open connections.
func (s *Server) ConnCount() int { return int(s.conns.Load()) }

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
		if s.cfg.MaxConnections > 0 && s.conns.Load() >= int64(s.cfg.MaxConnections) {
			s.log.Warn("rtmp: connection limit reached, closing new connection", "remote", nc.RemoteAddr().String(), "limit", s.cfg.MaxConnections)
			nc.Close()
			continue
		}
		s.conns.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.conns.Add(-1)
			c := newConn(s, nc)
			c.serve(ctx)
		}()
	}
}

// idleConn refreshes the read deadline as data flows and counts bytes read.
type idleConn struct {
	net.Conn
	idle      time.Duration
	refreshAt time.Time
	bytesIn   uint64
}

func (c *idleConn) Read(p []byte) (int, error) {
	if now := time.Now(); now.After(c.refreshAt) {
		if err := c.Conn.SetReadDeadline(now.Add(c.idle)); err != nil {
			return 0, err
		}
		c.refreshAt = now.Add(min(c.idle/10, time.Second))
	}
	n, err := c.Conn.Read(p)
	c.bytesIn += uint64(n)
	return n, err
}

type conn struct {
	s      *Server
	nc     net.Conn
	ic     *idleConn
	remote string
	log    *slog.Logger

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

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String(), peerWindow: serverWindow, nextStreamID: 1}
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
		stop()
		cancel()
		c.nc.Close()
	}()

	c.ic = &idleConn{Conn: c.nc, idle: c.s.cfg.IdleTimeout}
	c.br = bufio.NewReaderSize(c.ic, 64<<10)
	c.bw = bufio.NewWriterSize(c.nc, 4<<10)
	if err := c.nc.SetDeadline(time.Now().Add(c.s.cfg.HandshakeTimeout)); err != nil {
		cause = err
		return
	}
	if err := serverHandshake(rwPair{c.br, c.nc}, uint32(time.Since(c.s.start).Milliseconds())); err != nil {
		c.log.Debug("rtmp: handshake failed", "err", err)
		cause = err
		return
	}
	if err := c.nc.SetDeadline(time.Time{}); err != nil {
		cause = err
		return
	}
	c.ic.refreshAt = time.Time{}
	c.cr = NewChunkReader(c.br)
	c.cw = NewChunkWriter(c.bw)
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
			if errors.Is(err, errClean) {
				err = nil
			} else if c.stream == nil {
				c.log.Debug("rtmp: connection ended", "err", err)
			}
			cause = err
			return
		}
	}
}

type rwPair struct {
	r *bufio.Reader
	w net.Conn
}

func (p rwPair) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p rwPair) Write(b []byte) (int, error) { return p.w.Write(b) }

func (c *conn) flush() error {
	if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
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
		return c.media(m.Type, m.Timestamp, m.Payload)
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
