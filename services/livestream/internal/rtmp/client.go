package rtmp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
)

// Client is a minimal RTMP publisher: enough to push FLV tags to a server (the benchmark and
// tests use it). It sends connect, then releaseStream, FCPublish and createStream back to back
// like OBS does, waits for createStream's _result, publishes and waits for
// NetStream.Publish.Start. Not safe for concurrent use.
type Client struct {
	nc       net.Conn
	bw       *bufio.Writer
	cw       *ChunkWriter
	cr       *ChunkReader
	key      string
	streamID uint32
	txn      float64
}

// Client chunk stream ids.
const (
	clientCSIDCommand = 3
	clientCSIDAudio   = 4
	clientCSIDVideo   = 6
	clientCSIDData    = 5
)

// Publish dials rawURL (rtmp://host[:port]/app/key[?query]; the app is the first path segment)
// and publishes key. A refusal is returned as a *StatusError carrying the server's code.
func Publish(ctx context.Context, rawURL string) (*Client, error) {
	return PublishDialer(ctx, &net.Dialer{}, rawURL)
}

// PublishDialer is Publish dialing with d (e.g. from a chosen local address).
func PublishDialer(ctx context.Context, d *net.Dialer, rawURL string) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "rtmp" {
		return nil, fmt.Errorf("rtmp: URL scheme %q, want rtmp", u.Scheme)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "1935")
	}
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	return PublishConn(ctx, nc, rawURL)
}

// PublishConn publishes on a connection the caller dialled (and, for rtmps://, wrapped in
// TLS): rawURL gives the app, the key and the tcUrl (rtmp:// or rtmps://). nc is closed on
// failure.
func PublishConn(ctx context.Context, nc net.Conn, rawURL string) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if u.Scheme != "rtmp" && u.Scheme != "rtmps" {
		nc.Close()
		return nil, fmt.Errorf("rtmp: URL scheme %q, want rtmp or rtmps", u.Scheme)
	}
	app, key, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if u.RawQuery != "" {
		key += "?" + u.RawQuery
	}
	c := &Client{nc: nc, key: key}
	if err := c.setup(ctx, app, u.Scheme+"://"+u.Host+"/"+app); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) setup(ctx context.Context, app, tcURL string) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	br := bufio.NewReaderSize(c.nc, 16<<10)
	if err := clientHandshake(rwPair{br, c.nc}); err != nil {
		return err
	}
	c.bw = bufio.NewWriterSize(c.nc, 64<<10)
	c.cw = NewChunkWriter(c.bw)
	c.cr = NewChunkReader(br)
	if err := c.WriteMessage(Message{CSID: 2, Type: MsgSetChunkSize, Payload: be32(4096)}); err != nil {
		return err
	}
	c.cw.SetChunkSize(4096)
	if err := c.command(0, "connect", Object{
		{Key: "app", Value: app},
		{Key: "type", Value: "nonprivate"},
		{Key: "flashVer", Value: "FMLE/3.0 (compatible; spacecast)"},
		{Key: "tcUrl", Value: tcURL},
	}); err != nil {
		return err
	}
	// OBS-style pipelining.
	for _, name := range []string{"releaseStream", "FCPublish"} {
		if err := c.command(0, name, nil, c.key); err != nil {
			return err
		}
	}
	if err := c.command(0, "createStream", nil); err != nil {
		return err
	}
	createTxn := c.txn
	if err := c.bw.Flush(); err != nil {
		return err
	}
	for c.streamID == 0 {
		vals, err := c.readCommand()
		if err != nil {
			return err
		}
		name, _ := vals[0].(string)
		txn, _ := vals[1].(float64)
		switch {
		case name == "_error":
			return fmt.Errorf("rtmp: server answered %v", vals)
		case name == "_result" && txn == createTxn:
			id, _ := argAt(vals, 3).(float64)
			if id < 1 {
				return fmt.Errorf("rtmp: createStream returned %v", argAt(vals, 3))
			}
			c.streamID = uint32(id)
		}
	}
	if err := c.command(c.streamID, "publish", nil, c.key, "live"); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	for {
		vals, err := c.readCommand()
		if err != nil {
			return err
		}
		if name, _ := vals[0].(string); name != "onStatus" {
			continue
		}
		info, _ := argAt(vals, 3).(Object)
		if info.String("level") == "error" {
			return &StatusError{Code: info.String("code"), Description: info.String("description")}
		}
		if info.String("code") == "NetStream.Publish.Start" {
			break
		}
	}
	if err := c.nc.SetDeadline(time.Time{}); err != nil {
		return err
	}
	go func() { _, _ = io.Copy(io.Discard, br) }() // acks and pings are not needed by a publisher
	return nil
}

func argAt(vals []any, i int) any {
	if i < len(vals) {
		return vals[i]
	}
	return nil
}

func (c *Client) readCommand() ([]any, error) {
	for {
		m, err := c.cr.ReadMessage()
		if err != nil {
			return nil, err
		}
		if m.Type != MsgCommandAMF0 {
			continue
		}
		vals, err := DecodeAMF0(m.Payload)
		if err != nil {
			return nil, err
		}
		if len(vals) < 2 {
			continue // e.g. ffmpeg's bare onFCPublish: no transaction, nothing to wait for
		}
		return vals, nil
	}
}

func (c *Client) command(streamID uint32, name string, args ...any) error {
	c.txn++
	txn := c.txn
	if name == "publish" || name == "FCUnpublish" || name == "deleteStream" {
		txn = 0
	}
	b, err := EncodeAMF0(nil, name, txn)
	if err != nil {
		return err
	}
	if b, err = EncodeAMF0(b, args...); err != nil {
		return err
	}
	csid := uint32(clientCSIDCommand)
	if streamID != 0 {
		csid = 8
	}
	return c.WriteMessage(Message{CSID: csid, Type: MsgCommandAMF0, StreamID: streamID, Payload: b})
}

// StreamID is the message stream id the server gave.
func (c *Client) StreamID() uint32 { return c.streamID }

// WriteMessage queues a raw message (flush with Flush).
func (c *Client) WriteMessage(m Message) error { return c.cw.WriteMessage(m) }

// WriteTag queues one FLV tag as an audio, video or data message on the published stream
// (script data is sent as @setDataFrame). The timestamp is sent modulo 2^32.
func (c *Client) WriteTag(t flv.Tag) error {
	m := Message{Type: t.Type, StreamID: c.streamID, Timestamp: uint32(t.Timestamp), Payload: t.Data}
	switch t.Type {
	case flv.TagAudio:
		m.CSID = clientCSIDAudio
	case flv.TagVideo:
		m.CSID = clientCSIDVideo
	case flv.TagScript:
		m.CSID = clientCSIDData
		b, err := EncodeAMF0(nil, "@setDataFrame")
		if err != nil {
			return err
		}
		m.Payload = append(b, t.Data...)
	default:
		return fmt.Errorf("rtmp: tag type %d", t.Type)
	}
	return c.cw.WriteMessage(m)
}

// Flush sends what was queued.
func (c *Client) Flush() error { return c.bw.Flush() }

// Close ends the publish (FCUnpublish, deleteStream) and closes the connection.
func (c *Client) Close() error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
	err := c.command(c.streamID, "FCUnpublish", nil, c.key)
	if err == nil {
		err = c.command(0, "deleteStream", nil, float64(c.streamID))
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if cerr := c.nc.Close(); err == nil {
		err = cerr
	}
	return err
}

// Abort closes the connection without unpublishing (a dropped encoder).
func (c *Client) Abort() error { return c.nc.Close() }

// Conn is the client's connection (after Publish only the client writes it; a caller may read
// and discard what the server sends, e.g. acknowledgements, and set write deadlines).
func (c *Client) Conn() net.Conn { return c.nc }
