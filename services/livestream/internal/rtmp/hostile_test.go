package rtmp_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
)

// Hostile clients, spoken byte by byte over raw TCP: each must be cut by its limit, and what
// it made the server buffer must be given back when its socket closes.

func basicHdr(format uint8, csid uint32) []byte {
	if csid < 64 {
		return []byte{format<<6 | byte(csid)}
	}
	return []byte{format << 6, byte(csid - 64)} // csid < 320
}

func hdr0(csid uint32, length int, typ uint8, sid uint32) []byte {
	b := append(basicHdr(0, csid), 0, 0, 0, byte(length>>16), byte(length>>8), byte(length), typ)
	return binary.LittleEndian.AppendUint32(b, sid)
}

func setChunkSizeMsg(n uint32) []byte {
	return binary.BigEndian.AppendUint32(hdr0(2, 4, rtmp.MsgSetChunkSize, 0), n)
}

var zeros = make([]byte, 64<<10)

// writeChunks writes n payload bytes (zeros) of a message on csid whose header was already
// written (when first is false, the first chunk is a continuation too), in chunks of size.
func writeChunks(w io.Writer, csid uint32, n, size int, first bool) error {
	for sent := 0; sent < n; {
		if sent > 0 || !first {
			if _, err := w.Write(basicHdr(3, csid)); err != nil {
				return err
			}
		}
		k := min(size, n-sent, len(zeros))
		if _, err := w.Write(zeros[:k]); err != nil {
			return err
		}
		sent += k
	}
	return nil
}

// writePartial writes the first send bytes of a message announced as announce bytes.
func writePartial(w io.Writer, csid uint32, typ uint8, sid uint32, announce, send, chunkSize int) error {
	if _, err := w.Write(hdr0(csid, announce, typ, sid)); err != nil {
		return err
	}
	return writeChunks(w, csid, send, chunkSize, true)
}

// rawHandshake runs the client side of the plain handshake on nc.
func rawHandshake(nc net.Conn) error {
	c0c1 := make([]byte, 1537)
	c0c1[0] = 3
	if _, err := nc.Write(c0c1); err != nil {
		return err
	}
	s := make([]byte, 1+2*1536)
	if _, err := io.ReadFull(nc, s); err != nil {
		return err
	}
	_, err := nc.Write(s[1 : 1+1536])
	return err
}

// waitServerClose reads nc until the server closes it and returns how long that took. It
// fails the test if the server keeps it open for `within`. n is what the server sent.
func waitServerClose(t *testing.T, nc net.Conn, within time.Duration) (n int64, took time.Duration) {
	t.Helper()
	start := time.Now()
	_ = nc.SetReadDeadline(start.Add(within))
	n, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v", within)
	}
	return n, time.Since(start)
}

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: not %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// TestHostileConnectionsAreCut: each unauthenticated misbehaviour ends at its limit, counted
// in Stats under that limit, with nothing left buffered.
func TestHostileConnectionsAreCut(t *testing.T) {
	cfg := rtmp.Config{HandshakeTimeout: 300 * time.Millisecond, PublishTimeout: 600 * time.Millisecond, PrePublishBuffer: 64 << 10}
	handshake := func(nc net.Conn) error { return rawHandshake(nc) }
	cases := []struct {
		name  string
		setup func(nc net.Conn) error // before the test reads the connection
		flood func(nc net.Conn) error // in its own goroutine; returns when the server cuts it
		want  rtmp.Stats
	}{
		{
			name: "handshake trickled one byte per 50ms",
			flood: func(nc net.Conn) error {
				for {
					if _, err := nc.Write([]byte{3}); err != nil {
						return err
					}
					time.Sleep(50 * time.Millisecond)
				}
			},
			want: rtmp.Stats{HandshakeTimeout: 1},
		},
		{
			name:  "control messages every 100ms, no publish",
			setup: handshake,
			flood: func(nc net.Conn) error {
				for ts := uint32(0); ; ts++ {
					ping := binary.BigEndian.AppendUint32(append(hdr0(2, 6, rtmp.MsgUserControl, 0), 0, 6), ts)
					if _, err := nc.Write(ping); err != nil {
						return err
					}
					time.Sleep(100 * time.Millisecond)
				}
			},
			want: rtmp.Stats{PublishTimeout: 1},
		},
		{
			name:  "partial messages under the per-message cap on many chunk streams",
			setup: handshake,
			flood: func(nc net.Conn) error {
				w := bufio.NewWriter(nc)
				if _, err := w.Write(setChunkSizeMsg(4096)); err != nil {
					return err
				}
				for csid := uint32(3); csid < 200; csid++ { // 8000-byte messages, 4096 bytes of each
					if err := writePartial(w, csid, rtmp.MsgVideo, 1, 8000, 4096, 4096); err != nil {
						return err
					}
				}
				return w.Flush()
			},
			want: rtmp.Stats{BufferLimit: 1},
		},
		{
			name:  "a 16 MiB message announced",
			setup: handshake,
			flood: func(nc net.Conn) error {
				w := bufio.NewWriter(nc)
				if _, err := w.Write(setChunkSizeMsg(65536)); err != nil {
					return err
				}
				if err := writePartial(w, 3, rtmp.MsgVideo, 1, 1<<24-1, 1<<20, 65536); err != nil {
					return err
				}
				return w.Flush()
			},
			want: rtmp.Stats{MessageTooLarge: 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := startServerGet(t, newRecHandler(), cfg)
			nc := dialTCP(t, addr)
			if tc.setup != nil {
				if err := tc.setup(nc); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() { done <- tc.flood(nc) }()
			_, took := waitServerClose(t, nc, 5*time.Second)
			t.Logf("cut after %v", took)
			got := srv.Stats()
			got.Open = 0
			if got != tc.want {
				t.Errorf("stats %+v, want %+v", got, tc.want)
			}
			nc.Close()
			<-done
			eventually(t, "all connections gone", func() bool { return srv.ConnCount() == 0 })
		})
	}
}

// TestPerIPLimit: the N+1th connection of one address is refused at accept while another
// address still gets in; once the hostile ones are gone a real publish from the same address
// works.
func TestPerIPLimit(t *testing.T) {
	h := newRecHandler()
	srv, addr := startServerGet(t, h, rtmp.Config{MaxConnectionsPerIP: 3})
	var hostile []net.Conn
	for range 3 {
		nc := dialTCP(t, addr)
		if err := rawHandshake(nc); err != nil {
			t.Fatal(err)
		}
		hostile = append(hostile, nc)
	}
	over := dialTCP(t, addr)
	_, _ = over.Write(append([]byte{3}, make([]byte, 1536)...)) // C0+C1
	if n, _ := waitServerClose(t, over, 5*time.Second); n != 0 {
		t.Errorf("the server sent %d bytes to the connection over the limit", n)
	}
	if got := srv.Stats().RefusedPerIP; got != 1 {
		t.Errorf("RefusedPerIP = %d, want 1", got)
	}
	// Another loopback address is not affected.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	if other, err := d.Dial("tcp", addr); err != nil {
		t.Logf("no second loopback address to dial from (%v); that part is skipped", err)
	} else {
		hostile = append(hostile, other)
		if err := rawHandshake(other); err != nil {
			t.Errorf("a connection from 127.0.0.2 was not served: %v", err)
		}
	}
	for _, nc := range hostile {
		nc.Close()
	}
	eventually(t, "the hostile connections gone", func() bool { return srv.ConnCount() == 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := exec.LookPath("ffmpeg"); err == nil {
		out, err := runFFmpeg(ctx, "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-c:v", "libx264", "-preset", "veryfast",
			"-tune", "zerolatency", "-g", "30", "-t", "2", "-f", "flv", "rtmp://"+addr+"/app/after-flood")
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
	} else {
		t.Log("ffmpeg is not installed; publishing with the package's client")
		cl, err := rtmp.Publish(ctx, "rtmp://"+addr+"/app/after-flood")
		if err != nil {
			t.Fatal(err)
		}
		_ = cl.WriteTag(flv.Tag{Type: flv.TagVideo, Data: fakeAVCConfig()})
		if err := cl.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s := waitStream(t, h)
	if cause := waitClosed(t, s); cause != nil {
		t.Errorf("publish ended with %v", cause)
	}
	if s.req.StreamKey != "after-flood" || len(s.snapshot()) == 0 {
		t.Errorf("publish %q got %d tags", s.req.StreamKey, len(s.snapshot()))
	}
}

// publishRaw connects and publishes key by hand and returns the client and its stream id.
func publishRaw(t *testing.T, addr, key string) (*rawClient, uint32) {
	t.Helper()
	c := dialRaw(t, addr)
	c.command(3, 0, "connect", 1, rtmp.Object{{Key: "app", Value: "app"}, {Key: "tcUrl", Value: "rtmp://" + addr + "/app"}})
	c.command(3, 0, "createStream", 2, nil)
	c.flush()
	var sid uint32
	for sid == 0 {
		if _, vals := c.read(); len(vals) > 3 && vals[0] == "_result" && vals[1] == 2.0 {
			sid = uint32(vals[3].(float64))
		}
	}
	c.command(8, sid, "publish", 0, nil, key, "live")
	c.flush()
	for {
		_, vals := c.read()
		if len(vals) > 3 && vals[0] == "onStatus" {
			if code := vals[3].(rtmp.Object).String("code"); code != "NetStream.Publish.Start" {
				t.Fatalf("publish answered %s", code)
			}
			return c, sid
		}
	}
}

// TestMemoryBudgetRefusesNewMessage: with the budget held by one publisher's partial message,
// a second publisher's big message does not fit: that connection is closed, the first one
// completes its message.
func TestMemoryBudgetRefusesNewMessage(t *testing.T) {
	h := newRecHandler()
	srv, addr := startServerGet(t, h, rtmp.Config{MaxMessageSize: 512 << 10, MemoryBudget: 768 << 10})
	const size, sentFirst = 500000, 110 * 4096 // the first part ends at a chunk boundary
	a, sidA := publishRaw(t, addr, "a")
	sa := waitStream(t, h)
	if _, err := a.nc.Write(setChunkSizeMsg(4096)); err != nil {
		t.Fatal(err)
	}
	if err := writePartial(a.nc, 6, rtmp.MsgVideo, sidA, size, sentFirst, 4096); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's partial message buffered", func() bool { return srv.Stats().Buffered == size })

	b, sidB := publishRaw(t, addr, "b")
	sb := waitStream(t, h)
	go func() {
		if _, err := b.nc.Write(setChunkSizeMsg(4096)); err == nil {
			_ = writePartial(b.nc, 6, rtmp.MsgVideo, sidB, size, size-100000, 4096)
		}
	}()
	waitServerClose(t, b.nc, 5*time.Second)
	if cause := waitClosed(t, sb); !errors.Is(cause, rtmp.ErrMemoryBudget) {
		t.Errorf("b's stream closed with %v, want ErrMemoryBudget", cause)
	}
	if got := srv.Stats().MemoryBudget; got != 1 {
		t.Errorf("Stats.MemoryBudget = %d, want 1", got)
	}
	if got := srv.Stats().Buffered; got != size {
		t.Errorf("buffered %d after b was cut, want a's %d", got, size)
	}

	if err := writeChunks(a.nc, 6, size-sentFirst, 4096, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's message delivered", func() bool { return len(sa.snapshot()) == 1 })
	if n := len(sa.snapshot()[0].Data); n != size {
		t.Errorf("a's message has %d bytes, want %d", n, size)
	}
	if got := srv.Stats().Buffered; got != 0 {
		t.Errorf("buffered %d after the message was handed over, want 0", got)
	}
}

// TestPartialFloodHeapBounded floods partial messages on many connections before any publish
// and checks that the server's heap stays bounded and is given back when they close.
func TestPartialFloodHeapBounded(t *testing.T) {
	srv, addr := startServerGet(t, newRecHandler(), rtmp.Config{PrePublishBuffer: 64 << 10})
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse

	stop := make(chan struct{})
	peakc := make(chan uint64)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				peakc <- peak
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()

	const flooders, streams = 8, 32
	var wg sync.WaitGroup
	closed := make(chan bool, flooders)
	for i := range flooders {
		nc := dialTCP(t, addr)
		if err := rawHandshake(nc); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			w := bufio.NewWriterSize(nc, 64<<10)
			_, err := w.Write(setChunkSizeMsg(65536))
			for csid := uint32(3); err == nil && csid < 3+streams; csid++ {
				if i%2 == 0 { // big messages: 512 KiB of 1 MiB each
					err = writePartial(w, csid, rtmp.MsgVideo, 1, 1<<20, 512<<10, 65536)
				} else { // messages under the per-message cap
					err = writePartial(w, csid, rtmp.MsgVideo, 1, 60000, 50000, 65536)
				}
			}
			if err == nil {
				err = w.Flush()
			}
			_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.Copy(io.Discard, nc)
			var ne net.Error
			closed <- !(errors.As(err, &ne) && ne.Timeout())
		})
	}
	wg.Wait()
	close(stop)
	peak := <-peakc
	for range flooders {
		if !<-closed {
			t.Error("a flooder was not cut within 10s")
		}
	}
	t.Logf("heap in use: %d KiB before, %d KiB at the peak", base>>10, peak>>10)
	if peak > base+32<<20 {
		t.Errorf("heap in use rose by %d MiB during the flood, want < 32 MiB", (peak-base)>>20)
	}
	eventually(t, "all connections gone", func() bool { return srv.ConnCount() == 0 })
	if b := srv.Stats().Buffered; b != 0 {
		t.Errorf("%d bytes still counted as buffered after every connection closed", b)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > base+8<<20 {
		t.Errorf("heap in use %d KiB after the flood and a GC, %d KiB before", ms.HeapInuse>>10, base>>10)
	}
	if st := srv.Stats(); st.MessageTooLarge+st.BufferLimit != flooders {
		t.Errorf("stats %+v: want %d connections cut by the buffer limits", st, flooders)
	}
}

// TestPublishDeadlineAgainAfterUnpublish: a connection whose publish ended is unauthenticated
// again: if it stays open without publishing, the publish deadline closes it.
func TestPublishDeadlineAgainAfterUnpublish(t *testing.T) {
	h := newRecHandler()
	srv, addr := startServerGet(t, h, rtmp.Config{HandshakeTimeout: 300 * time.Millisecond, PublishTimeout: 600 * time.Millisecond})
	c, sid := publishRaw(t, addr, "k")
	s := waitStream(t, h)
	// Past the deadline from accept while publishing: it no longer applies (were it still
	// applied, the stream would end with a timeout below).
	time.Sleep(700 * time.Millisecond)
	c.command(3, 0, "FCUnpublish", 3, nil, "k")
	c.command(3, 0, "deleteStream", 4, nil, float64(sid))
	c.flush()
	if cause := waitClosed(t, s); cause != nil {
		t.Fatalf("publish ended with %v", cause)
	}
	if got := srv.Stats().PublishTimeout; got != 0 {
		t.Fatalf("PublishTimeout = %d while publishing", got)
	}
	go func() {
		for ts := uint32(0); ; ts++ {
			ping := binary.BigEndian.AppendUint32(append(hdr0(2, 6, rtmp.MsgUserControl, 0), 0, 6), ts)
			if _, err := c.nc.Write(ping); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	waitServerClose(t, c.nc, 5*time.Second)
	if got := srv.Stats().PublishTimeout; got != 1 {
		t.Errorf("PublishTimeout = %d, want 1", got)
	}
}
