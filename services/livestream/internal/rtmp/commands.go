package rtmp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
)

// command handles an AMF0 command message (NetConnection and NetStream commands).
func (c *conn) command(m Message, payload []byte) error {
	vals, err := DecodeAMF0(payload)
	if err != nil && len(vals) < 2 {
		return fmt.Errorf("%w: undecodable command: %v", ErrProtocol, err)
	}
	name, ok := vals[0].(string)
	if !ok {
		return fmt.Errorf("%w: command name is a %T", ErrProtocol, vals[0])
	}
	var txn float64
	if len(vals) > 1 {
		txn, _ = vals[1].(float64)
	}
	arg := func(i int) any {
		if i < len(vals) {
			return vals[i]
		}
		return nil
	}
	switch name {
	case "connect":
		return c.onConnect(txn, arg(2))
	case "releaseStream", "FCPublish":
		// OBS and ffmpeg send these before createStream without waiting for the answers.
		if txn != 0 {
			return c.sendCommand(csidCommand, 0, "_result", txn, nil, Undefined{})
		}
		return nil
	case "createStream":
		id := c.nextStreamID
		c.nextStreamID++
		return c.sendCommand(csidCommand, 0, "_result", txn, nil, float64(id))
	case "publish":
		pubName, _ := arg(3).(string)
		pubType, _ := arg(4).(string)
		return c.onPublish(m.StreamID, pubName, pubType)
	case "FCUnpublish":
		if txn != 0 {
			if err := c.sendCommand(csidCommand, 0, "_result", txn, nil, Undefined{}); err != nil {
				return err
			}
		}
		if c.stream != nil {
			if err := c.sendStatus(c.streamID, "status", "NetStream.Unpublish.Success", "Stopped publishing."); err != nil {
				return err
			}
			c.endPublish(nil)
		}
		return nil
	case "deleteStream", "closeStream":
		c.endPublish(nil)
		return nil
	case "play", "play2":
		if err := c.sendStatus(m.StreamID, "error", "NetStream.Play.Failed", "This server only accepts publishing; play the stream over HLS."); err != nil {
			return err
		}
		return c.refuse()
	case "_result", "_error", "onStatus", "onBWDone", "onFCPublish", "onFCUnpublish", "_checkbw_result":
		return nil
	default:
		c.log.Debug("rtmp: unknown command", "command", truncate(name, 64))
		if txn != 0 {
			return c.sendCommand(csidCommand, 0, "_error", txn, nil, Object{
				{Key: "level", Value: "error"},
				{Key: "code", Value: "NetConnection.Call.Failed"},
				{Key: "description", Value: "Unknown command " + truncate(name, 64) + "."},
			})
		}
		return nil
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (c *conn) sendCommand(csid, streamID uint32, name string, txn float64, args ...any) error {
	b, err := EncodeAMF0(nil, name, txn)
	if err != nil {
		return err
	}
	if b, err = EncodeAMF0(b, args...); err != nil {
		return err
	}
	return c.cw.WriteMessage(Message{CSID: csid, Type: MsgCommandAMF0, StreamID: streamID, Payload: b})
}

func (c *conn) sendStatus(streamID uint32, level, code, desc string) error {
	return c.sendCommand(csidStreamStatus, streamID, "onStatus", 0, nil, Object{
		{Key: "level", Value: level},
		{Key: "code", Value: code},
		{Key: "description", Value: desc},
	})
}

func (c *conn) onConnect(txn float64, cmdObj any) error {
	var obj Object
	switch o := cmdObj.(type) {
	case Object:
		obj = o
	case ECMAArray:
		obj = Object(o)
	}
	c.app, c.tcURL = obj.String("app"), obj.String("tcUrl")
	c.objEncoding = obj.Number("objectEncoding")
	c.connected = true
	c.ourWindow = serverWindow
	if err := c.sendControl(MsgWindowAckSize, be32(serverWindow)); err != nil {
		return err
	}
	if err := c.sendControl(MsgSetPeerBandwidth, append(be32(serverWindow), 2)); err != nil { // dynamic
		return err
	}
	if err := c.sendControl(MsgSetChunkSize, be32(serverChunkSize)); err != nil {
		return err
	}
	c.cw.SetChunkSize(serverChunkSize)
	c.log.Debug("rtmp: connect", "app", c.app)
	return c.sendCommand(csidCommand, 0, "_result", txn,
		Object{
			{Key: "fmsVer", Value: "FMS/3,0,1,123"},
			{Key: "capabilities", Value: 31.0},
		},
		Object{
			{Key: "level", Value: "status"},
			{Key: "code", Value: "NetConnection.Connect.Success"},
			{Key: "description", Value: "Connection succeeded."},
			{Key: "objectEncoding", Value: c.objEncoding},
		})
}

// streamKey derives the stream key: the last path segment of the publish name without its
// query ("KEY", "live/KEY?token=1"), else the last path segment of the app ("app/KEY").
func streamKey(app, pubName string) string {
	if k := lastSegment(stripQuery(pubName)); k != "" {
		return k
	}
	return lastSegment(stripQuery(app))
}

func lastSegment(s string) string {
	s = strings.TrimRight(s, "/")
	return s[strings.LastIndexByte(s, '/')+1:]
}

func stripQuery(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i]
	}
	return s
}

func (c *conn) onPublish(streamID uint32, pubName, pubType string) error {
	if !c.connected {
		if err := c.sendStatus(streamID, "error", "NetStream.Publish.BadConnection", "publish before connect"); err != nil {
			return err
		}
		return c.refuse()
	}
	if c.stream != nil {
		if err := c.sendStatus(streamID, "error", "NetStream.Publish.BadConnection", "this connection is already publishing"); err != nil {
			return err
		}
		_ = c.flush()
		return fmt.Errorf("%w: second publish on one connection", ErrProtocol)
	}
	if pubType == "" {
		pubType = "live"
	}
	app := stripQuery(c.app)
	req := PublishRequest{
		App:         app,
		StreamKey:   streamKey(app, pubName),
		TCURL:       c.tcURL,
		RemoteAddr:  c.remote,
		PublishName: pubName,
		PublishType: pubType,
		Close:       c.close,
	}
	_, req.TLS = c.nc.(*tls.Conn)
	st, err := c.s.cfg.Handler.Publish(c.ctx, req)
	if err == nil && st == nil {
		err = errors.New("publish not accepted")
	}
	if err != nil {
		code, desc := "NetStream.Publish.BadName", err.Error()
		var se *StatusError
		if errors.As(err, &se) {
			if se.Code != "" {
				code = se.Code
			}
			desc = se.Error()
		}
		c.log.Info("rtmp: publish refused", "app", app, "code", code, "reason", desc)
		if err := c.sendStatus(streamID, "error", code, desc); err != nil {
			return err
		}
		return c.refuse()
	}
	c.stream, c.streamID, c.ts, c.tagCount = st, streamID, flv.Unwrapper{}, 0
	c.published()
	c.log.Info("rtmp: publish started", "app", app, "type", pubType)
	// User Control StreamBegin, then NetStream.Publish.Start (ffmpeg waits for it).
	if err := c.sendControl(MsgUserControl, append([]byte{0, 0}, be32(streamID)...)); err != nil {
		return err
	}
	return c.sendStatus(streamID, "status", "NetStream.Publish.Start", "Started publishing.")
}

// refuse flushes what was queued, half-closes the connection so the peer reads the status
// before the socket goes away, and drains briefly. It returns errClean.
func (c *conn) refuse() error {
	if err := c.flush(); err != nil {
		return err
	}
	if tc, ok := c.nc.(interface {
		net.Conn
		CloseWrite() error
	}); ok { // *net.TCPConn, *tls.Conn (RTMPS: close_notify)
		_ = tc.CloseWrite()
		_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.Copy(io.Discard, io.LimitReader(tc, 1<<20))
	}
	return errClean
}
