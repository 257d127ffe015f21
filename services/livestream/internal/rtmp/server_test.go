package rtmp_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/hls"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
)

// recStream records what the server hands to a Stream.
type recStream struct {
	mu       sync.Mutex
	req      rtmp.PublishRequest
	tags     []flv.Tag
	writeErr error // returned by WriteTag when set
	closed   chan error
}

func (s *recStream) WriteTag(t flv.Tag) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tags = append(s.tags, t)
	return s.writeErr
}

func (s *recStream) Close(cause error) { s.closed <- cause }

func (s *recStream) snapshot() []flv.Tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]flv.Tag(nil), s.tags...)
}

type recHandler struct {
	refuse   error
	writeErr error
	streams  chan *recStream
}

func newRecHandler() *recHandler { return &recHandler{streams: make(chan *recStream, 8)} }

func (h *recHandler) Publish(ctx context.Context, req rtmp.PublishRequest) (rtmp.Stream, error) {
	if h.refuse != nil {
		return nil, h.refuse
	}
	s := &recStream{req: req, writeErr: h.writeErr, closed: make(chan error, 1)}
	h.streams <- s
	return s, nil
}

func waitStream(t *testing.T, h *recHandler) *recStream {
	t.Helper()
	select {
	case s := <-h.streams:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no publish reached the handler")
		return nil
	}
}

func waitClosed(t *testing.T, s *recStream) error {
	t.Helper()
	select {
	case err := <-s.closed:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Stream.Close was not called")
		return nil
	}
}

// rawClient speaks RTMP by hand for the tests that need exact control.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	bw *bufio.Writer
	cw *rtmp.ChunkWriter
	cr *rtmp.ChunkReader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	c0c1 := make([]byte, 1537)
	c0c1[0] = 3
	if _, err := nc.Write(c0c1); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	s := make([]byte, 1+2*1536)
	if _, err := io.ReadFull(br, s); err != nil {
		t.Fatal(err)
	}
	if s[0] != 3 {
		t.Fatalf("S0 = %d", s[0])
	}
	if string(s[1+1536:1+1536+4]) != string(c0c1[1:5]) || string(s[1+1536+8:]) != string(c0c1[9:]) {
		t.Error("S2 does not echo C1")
	}
	if _, err := nc.Write(s[1 : 1+1536]); err != nil { // C2
		t.Fatal(err)
	}
	bw := bufio.NewWriter(nc)
	return &rawClient{t: t, nc: nc, bw: bw, cw: rtmp.NewChunkWriter(bw), cr: rtmp.NewChunkReader(br)}
}

func (c *rawClient) command(csid, sid uint32, vals ...any) {
	c.t.Helper()
	b, err := rtmp.EncodeAMF0(nil, vals...)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.cw.WriteMessage(rtmp.Message{CSID: csid, Type: rtmp.MsgCommandAMF0, StreamID: sid, Payload: b}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) flush() {
	c.t.Helper()
	if err := c.bw.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) read() (rtmp.Message, []any) {
	c.t.Helper()
	m, err := c.cr.ReadMessage()
	if err != nil {
		c.t.Fatalf("reading from server: %v", err)
	}
	var vals []any
	if m.Type == rtmp.MsgCommandAMF0 {
		if vals, err = rtmp.DecodeAMF0(m.Payload); err != nil {
			c.t.Fatal(err)
		}
	}
	return m, vals
}

// TestPipelinedCommandsOBSStyle sends connect, releaseStream, FCPublish and createStream in one
// write, as OBS does, then publishes and checks every answer.
func TestPipelinedCommandsOBSStyle(t *testing.T) {
	h := newRecHandler()
	addr := startServer(t, h, rtmp.Config{})
	c := dialRaw(t, addr)
	c.command(3, 0, "connect", 1, rtmp.Object{{Key: "app", Value: "live?secret=x"}, {Key: "tcUrl", Value: "rtmp://127.0.0.1/live"}, {Key: "type", Value: "nonprivate"}})
	c.command(3, 0, "releaseStream", 2, nil, "obs-key?x=1")
	c.command(3, 0, "FCPublish", 3, nil, "obs-key?x=1")
	c.command(3, 0, "createStream", 4, nil)
	c.command(3, 0, "someUnknownCall", 5, nil)
	c.command(3, 0, "someUnknownNotify", 0, nil)
	c.flush()

	var sawWindow, sawBandwidth, sawChunk bool
	results := map[float64][]any{}
	for len(results) < 5 {
		m, vals := c.read()
		switch m.Type {
		case rtmp.MsgWindowAckSize:
			sawWindow = true
		case rtmp.MsgSetPeerBandwidth:
			sawBandwidth = true
		case rtmp.MsgSetChunkSize:
			sawChunk = true
		case rtmp.MsgCommandAMF0:
			txn, _ := vals[1].(float64)
			results[txn] = vals
		}
	}
	if !sawWindow || !sawBandwidth || !sawChunk {
		t.Errorf("control messages on connect: window=%v bandwidth=%v chunk=%v", sawWindow, sawBandwidth, sawChunk)
	}
	if r := results[1]; r[0] != "_result" || r[3].(rtmp.Object).String("code") != "NetConnection.Connect.Success" {
		t.Errorf("connect answer %v", r)
	}
	for _, txn := range []float64{2, 3} {
		if results[txn][0] != "_result" {
			t.Errorf("txn %v answered %v", txn, results[txn])
		}
	}
	r := results[4]
	streamID, _ := r[3].(float64)
	if r[0] != "_result" || streamID < 1 {
		t.Fatalf("createStream answer %v", r)
	}
	if results[5][0] != "_error" {
		t.Errorf("unknown call answered %v, want _error", results[5])
	}
	c.command(8, uint32(streamID), "publish", 0, nil, "obs-key?x=1", "live")
	c.flush()
	var started bool
	for !started {
		m, vals := c.read()
		if m.Type == rtmp.MsgCommandAMF0 && vals[0] == "onStatus" {
			info := vals[3].(rtmp.Object)
			if info.String("code") != "NetStream.Publish.Start" || info.String("level") != "status" {
				t.Fatalf("onStatus %v", info)
			}
			if m.StreamID != uint32(streamID) {
				t.Errorf("onStatus on message stream %d, want %v", m.StreamID, streamID)
			}
			started = true
		}
	}
	s := waitStream(t, h)
	if s.req.StreamKey != "obs-key" || s.req.App != "live" || s.req.PublishName != "obs-key?x=1" || s.req.PublishType != "live" {
		t.Errorf("publish request %+v", s.req)
	}
	// metadata via @setDataFrame, then media, then a clean unpublish.
	meta, _ := rtmp.EncodeAMF0(nil, "@setDataFrame", "onMetaData", rtmp.ECMAArray{{Key: "width", Value: 640.0}})
	_ = c.cw.WriteMessage(rtmp.Message{CSID: 5, Type: rtmp.MsgDataAMF0, StreamID: uint32(streamID), Payload: meta})
	_ = c.cw.WriteMessage(rtmp.Message{CSID: 4, Type: rtmp.MsgAudio, StreamID: uint32(streamID), Timestamp: 10, Payload: []byte{0xaf, 1, 2}})
	_ = c.cw.WriteMessage(rtmp.Message{CSID: 6, Type: rtmp.MsgVideo, StreamID: uint32(streamID), Timestamp: 20, Payload: []byte{0x17, 1, 0, 0, 0}})
	c.command(3, 0, "FCUnpublish", 6, nil, "obs-key?x=1")
	c.command(3, 0, "deleteStream", 7, nil, streamID)
	c.flush()
	if cause := waitClosed(t, s); cause != nil {
		t.Errorf("Close(%v), want nil after FCUnpublish", cause)
	}
	tags := s.snapshot()
	if len(tags) != 3 {
		t.Fatalf("%d tags, want 3", len(tags))
	}
	vals, err := rtmp.DecodeAMF0(tags[0].Data)
	if err != nil || tags[0].Type != flv.TagScript || len(vals) != 2 || vals[0] != "onMetaData" {
		t.Errorf("script tag %v %v (want onMetaData without @setDataFrame)", vals, err)
	}
	if tags[1].Type != flv.TagAudio || tags[1].Timestamp != 10 || tags[2].Type != flv.TagVideo || tags[2].Timestamp != 20 {
		t.Errorf("media tags %+v", tags[1:])
	}
}

// fakeAVC returns an AVC sequence header and frames (content is not decodable, the structure is).
func fakeAVCConfig() []byte {
	sps := []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10}
	pps := []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
	b := []byte{0x17, 0, 0, 0, 0, 1, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0, byte(len(sps))}
	b = append(b, sps...)
	b = append(b, 1, 0, byte(len(pps)))
	return append(b, pps...)
}

func fakeAVCFrame(key bool, size int) []byte {
	b := []byte{0x27, 1, 0, 0, 0}
	nalType := byte(0x41)
	if key {
		b[0] = 0x17
		nalType = 0x65
	}
	b = append(b, byte(size>>24), byte(size>>16), byte(size>>8), byte(size), nalType)
	return append(b, make([]byte, size-1)...)
}

// TestTimestampsPastExtendedRange publishes with the package's client across 2^24 ms (extended
// timestamps, also on type 3 continuation chunks since video frames are larger than the chunk
// size) and across the 32-bit wrap, through Demuxer and Segmenter.
func TestTimestampsPastExtendedRange(t *testing.T) {
	for _, start := range []int64{1<<24 - 1500, 1<<32 - 1500} {
		t.Run(fmt.Sprintf("start=%d", start), func(t *testing.T) {
			h := newRecHandler()
			addr := startServer(t, h, rtmp.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cl, err := rtmp.Publish(ctx, "rtmp://"+addr+"/app/ts-key")
			if err != nil {
				t.Fatal(err)
			}
			s := waitStream(t, h)
			var sent []flv.Tag
			send := func(tag flv.Tag) {
				if err := cl.WriteTag(tag); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, tag)
			}
			send(flv.Tag{Type: flv.TagVideo, Timestamp: start, Data: fakeAVCConfig()})
			send(flv.Tag{Type: flv.TagAudio, Timestamp: start, Data: []byte{0xaf, 0, 0x12, 0x10}})
			for ms := int64(0); ms <= 3000; ms++ {
				if ms%33 == 0 {
					send(flv.Tag{Type: flv.TagVideo, Timestamp: start + ms, Data: fakeAVCFrame(ms%990 == 0, 9000)})
				}
				if ms%23 == 0 {
					send(flv.Tag{Type: flv.TagAudio, Timestamp: start + ms, Data: append([]byte{0xaf, 1}, make([]byte, 300)...)})
				}
			}
			if err := cl.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := cl.Close(); err != nil {
				t.Fatal(err)
			}
			if cause := waitClosed(t, s); cause != nil {
				t.Fatalf("Close(%v)", cause)
			}
			got := s.snapshot()
			if len(got) != len(sent) {
				t.Fatalf("got %d tags, sent %d", len(got), len(sent))
			}
			for i := range sent {
				if got[i].Timestamp != sent[i].Timestamp || got[i].Type != sent[i].Type || len(got[i].Data) != len(sent[i].Data) {
					t.Fatalf("tag %d: got type %d ts %d len %d, sent type %d ts %d len %d", i,
						got[i].Type, got[i].Timestamp, len(got[i].Data), sent[i].Type, sent[i].Timestamp, len(sent[i].Data))
				}
			}
			// Through Demuxer and Segmenter: segments of 2 s regardless of the absolute time.
			dir := t.TempDir()
			seg, err := hls.NewSegmenter(hls.SegmenterConfig{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			d := flv.NewDemuxer()
			for _, tag := range got {
				pkts, err := d.Push(tag)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range pkts {
					if err := seg.WritePacket(p); err != nil {
						t.Fatal(err)
					}
				}
			}
			total, err := seg.Finish()
			if err != nil {
				t.Fatal(err)
			}
			if total < 2900*time.Millisecond || total > 3100*time.Millisecond {
				t.Errorf("recorded %v, want about 3s", total)
			}
			vod, _ := os.ReadFile(filepath.Join(dir, hls.VODPlaylist))
			if !strings.Contains(string(vod), "#EXTINF:2.970,\nseg-0.ts") {
				t.Errorf("vod.m3u8:\n%s", vod)
			}
		})
	}
}

func TestRefusalCodes(t *testing.T) {
	cases := []struct {
		err      error
		wantCode string
		wantDesc string
	}{
		{errors.New("unknown stream key"), "NetStream.Publish.BadName", "unknown stream key"},
		{&rtmp.StatusError{Code: "NetStream.Publish.BadConnection", Description: "stream is busy"}, "NetStream.Publish.BadConnection", "stream is busy"},
		{fmt.Errorf("wrapped: %w", &rtmp.StatusError{Code: "NetStream.Publish.Denied", Description: "disabled"}), "NetStream.Publish.Denied", "disabled"},
	}
	for _, tc := range cases {
		t.Run(tc.wantCode, func(t *testing.T) {
			h := newRecHandler()
			h.refuse = tc.err
			addr := startServer(t, h, rtmp.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := rtmp.Publish(ctx, "rtmp://"+addr+"/app/k")
			var se *rtmp.StatusError
			if !errors.As(err, &se) || se.Code != tc.wantCode || se.Description != tc.wantDesc {
				t.Fatalf("got %v, want status %s %q", err, tc.wantCode, tc.wantDesc)
			}
		})
	}
}

func TestKickIdleAndShutdown(t *testing.T) {
	t.Run("kick", func(t *testing.T) {
		h := newRecHandler()
		addr := startServer(t, h, rtmp.Config{})
		cl, err := rtmp.Publish(context.Background(), "rtmp://"+addr+"/app/k")
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Abort()
		s := waitStream(t, h)
		s.req.Close()
		s.req.Close() // twice is fine
		if cause := waitClosed(t, s); !errors.Is(cause, rtmp.ErrKicked) {
			t.Errorf("Close(%v), want ErrKicked", cause)
		}
	})
	t.Run("idle", func(t *testing.T) {
		h := newRecHandler()
		addr := startServer(t, h, rtmp.Config{IdleTimeout: 400 * time.Millisecond})
		cl, err := rtmp.Publish(context.Background(), "rtmp://"+addr+"/app/k")
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Abort()
		s := waitStream(t, h)
		start := time.Now()
		cause := waitClosed(t, s)
		if !errors.Is(cause, os.ErrDeadlineExceeded) {
			t.Errorf("Close(%v), want a timeout", cause)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("idle publisher dropped after %v", el)
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		h := newRecHandler()
		srv, err := rtmp.NewServer(rtmp.Config{Logger: discardLogger(), Handler: h})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, ln) }()
		cl, err := rtmp.Publish(context.Background(), "rtmp://"+ln.Addr().String()+"/app/k")
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Abort()
		s := waitStream(t, h)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v", err)
		}
		select {
		case cause := <-s.closed: // Serve waited for it
			if !errors.Is(cause, context.Canceled) {
				t.Errorf("Close(%v), want context.Canceled", cause)
			}
		default:
			t.Error("Serve returned before the stream was closed")
		}
	})
	t.Run("write error closes", func(t *testing.T) {
		h := newRecHandler()
		h.writeErr = fmt.Errorf("refusing: %w", flv.ErrUnsupportedCodec)
		addr := startServer(t, h, rtmp.Config{})
		cl, err := rtmp.Publish(context.Background(), "rtmp://"+addr+"/app/k")
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Abort()
		s := waitStream(t, h)
		_ = cl.WriteTag(flv.Tag{Type: flv.TagAudio, Data: []byte{0x2f, 0}})
		_ = cl.Flush()
		if cause := waitClosed(t, s); !errors.Is(cause, flv.ErrUnsupportedCodec) {
			t.Errorf("Close(%v), want the WriteTag error", cause)
		}
	})
	t.Run("max connections", func(t *testing.T) {
		h := newRecHandler()
		addr := startServer(t, h, rtmp.Config{MaxConnections: 1})
		cl, err := rtmp.Publish(context.Background(), "rtmp://"+addr+"/app/k")
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Abort()
		waitStream(t, h)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := rtmp.Publish(ctx, "rtmp://"+addr+"/app/k2"); err == nil {
			t.Error("second connection over MaxConnections=1 was served")
		}
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// lendingStream is a TagKeeper: it copies every tag and says whether it kept tag.Data.
type lendingStream struct {
	recStream
	kept   bool
	copies [][]byte
	addrs  map[*byte]int // first byte of each tag.Data seen → how often
}

func (s *lendingStream) WriteTag(t flv.Tag) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tags = append(s.tags, t)
	s.copies = append(s.copies, bytes.Clone(t.Data))
	if len(t.Data) > 0 {
		s.addrs[&t.Data[0]]++
	}
	return nil
}

func (s *lendingStream) KeptTagData() bool { return s.kept }

type lendingHandler struct {
	kept    bool
	streams chan *lendingStream
}

func (h *lendingHandler) Publish(ctx context.Context, req rtmp.PublishRequest) (rtmp.Stream, error) {
	s := &lendingStream{recStream: recStream{req: req, closed: make(chan error, 1)}, kept: h.kept, addrs: map[*byte]int{}}
	h.streams <- s
	return s, nil
}

// TestTagDataReuse: a stream that kept nothing of a tag gets later tags in the same memory;
// one that kept them (or is no TagKeeper) finds every kept tag intact at the end.
func TestTagDataReuse(t *testing.T) {
	for _, kept := range []bool{false, true} {
		t.Run(fmt.Sprintf("kept=%v", kept), func(t *testing.T) {
			h := &lendingHandler{kept: kept, streams: make(chan *lendingStream, 1)}
			addr := startServer(t, h, rtmp.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cl, err := rtmp.Publish(ctx, "rtmp://"+addr+"/app/reuse-key")
			if err != nil {
				t.Fatal(err)
			}
			var s *lendingStream
			select {
			case s = <-h.streams:
			case <-time.After(10 * time.Second):
				t.Fatal("no publish reached the handler")
			}
			var sent [][]byte
			for i := range 60 {
				frame := fakeAVCFrame(i%30 == 0, 3000+(i*997)%5000)
				for j := 5; j < len(frame); j++ {
					frame[j] = byte(i)
				}
				if err := cl.WriteTag(flv.Tag{Type: flv.TagVideo, Timestamp: int64(i * 33), Data: frame}); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, frame)
			}
			if err := cl.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := cl.Close(); err != nil {
				t.Fatal(err)
			}
			if cause := waitClosed(t, &s.recStream); cause != nil {
				t.Fatalf("Close(%v)", cause)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.copies) != len(sent) {
				t.Fatalf("got %d tags, sent %d", len(s.copies), len(sent))
			}
			reused := 0
			for _, n := range s.addrs {
				reused += n - 1
			}
			for i := range sent {
				if !bytes.Equal(s.copies[i], sent[i]) {
					t.Fatalf("tag %d: not what was sent when WriteTag had it", i)
				}
				if kept && !bytes.Equal(s.tags[i].Data, sent[i]) {
					t.Fatalf("tag %d: changed after WriteTag although the stream kept it", i)
				}
			}
			if kept && reused > 0 {
				t.Fatalf("%d tags were read into memory a kept tag still used", reused)
			}
			if !kept && reused < len(sent)/2 {
				t.Fatalf("only %d of %d tags reused a payload buffer", reused, len(sent))
			}
		})
	}
}
