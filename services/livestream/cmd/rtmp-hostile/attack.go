package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
)

// kind is one way of misbehaving. run writes to nc until it fails or ctx ends; the server
// closing nc makes the writes fail.
type kind struct {
	name string
	run  func(ctx context.Context, nc net.Conn, rate int) error
}

var kinds = []kind{
	{"flood-big", floodBig},
	{"flood-many", floodMany},
	{"trickle", trickle},
	{"keepalive", keepalive},
}

type tally struct {
	opened, cut, longest atomic.Int64
}

// attacker opens connections of kind k from src again and again until ctx ends.
func attacker(ctx context.Context, addr string, src net.IP, k kind, rate int, t *tally) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
	for ctx.Err() == nil {
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		t.opened.Add(1)
		start := time.Now()
		closed := make(chan struct{})
		go func() { // the server closing the connection ends the read
			_, _ = io.Copy(io.Discard, nc)
			close(closed)
		}()
		kctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(kctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
		go func() {
			select {
			case <-closed:
				cancel()
			case <-kctx.Done():
			}
		}()
		_ = k.run(kctx, nc, rate)
		// Written all it had, or failed: wait for the server to close it (or the end).
		select {
		case <-closed:
		case <-ctx.Done():
		}
		if ctx.Err() == nil {
			t.cut.Add(1)
		}
		if el := int64(time.Since(start)); el > t.longest.Load() {
			t.longest.Store(el)
		}
		stop()
		cancel()
		nc.Close()
		<-closed
		sleep(ctx, 100*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func handshake(nc net.Conn) error {
	c0c1 := make([]byte, 1537)
	c0c1[0] = 3
	if _, err := nc.Write(c0c1); err != nil {
		return err
	}
	// The reader goroutine consumes S0-S2; C2 is not checked by servers, send zeros.
	_, err := nc.Write(make([]byte, 1536))
	return err
}

func hdr0(csid uint32, length int, typ uint8, sid uint32) []byte {
	var b []byte
	if csid < 64 {
		b = append(b, byte(csid))
	} else {
		b = append(b, 0, byte(csid-64))
	}
	b = append(b, 0, 0, 0, byte(length>>16), byte(length>>8), byte(length), typ)
	return binary.LittleEndian.AppendUint32(b, sid)
}

func hdr3(csid uint32) []byte {
	if csid < 64 {
		return []byte{3<<6 | byte(csid)}
	}
	return []byte{3 << 6, byte(csid - 64)}
}

var zeros = make([]byte, 64<<10)

// pacer spreads writes at rate bytes per second.
type pacer struct {
	rate  int
	start time.Time
	sent  int
}

func (p *pacer) wait(ctx context.Context, n int) bool {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	p.sent += n
	due := p.start.Add(time.Duration(float64(p.sent) / float64(p.rate) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		return sleep(ctx, d)
	}
	return ctx.Err() == nil
}

// floodBig announces a 16 MiB video message and streams it in 64 KiB chunks, then the next
// one on the next chunk stream, never completing any.
func floodBig(ctx context.Context, nc net.Conn, rate int) error {
	if err := handshake(nc); err != nil {
		return err
	}
	w := bufio.NewWriterSize(nc, 64<<10)
	if _, err := w.Write(binary.BigEndian.AppendUint32(hdr0(2, 4, rtmp.MsgSetChunkSize, 0), 65536)); err != nil {
		return err
	}
	p := pacer{rate: rate}
	const size = 1<<24 - 1
	for csid := uint32(3); csid < 320; csid++ {
		if _, err := w.Write(hdr0(csid, size, rtmp.MsgVideo, 1)); err != nil {
			return err
		}
		for sent := 0; sent+len(zeros) < size; sent += len(zeros) {
			if sent > 0 {
				if _, err := w.Write(hdr3(csid)); err != nil {
					return err
				}
			}
			if _, err := w.Write(zeros); err != nil {
				return err
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if !p.wait(ctx, len(zeros)) {
				return ctx.Err()
			}
		}
	}
	return nil
}

// floodMany starts 200 KB messages on 256 chunk streams and adds 4 KiB to each in turn.
func floodMany(ctx context.Context, nc net.Conn, rate int) error {
	if err := handshake(nc); err != nil {
		return err
	}
	w := bufio.NewWriterSize(nc, 64<<10)
	const chunk, size, streams = 4096, 200000, 256
	if _, err := w.Write(binary.BigEndian.AppendUint32(hdr0(2, 4, rtmp.MsgSetChunkSize, 0), chunk)); err != nil {
		return err
	}
	p := pacer{rate: rate}
	for round := 0; (round+1)*chunk < size; round++ {
		for i := range uint32(streams) {
			csid := 3 + i
			h := hdr3(csid)
			if round == 0 {
				h = hdr0(csid, size, rtmp.MsgVideo, 1)
			}
			if _, err := w.Write(h); err != nil {
				return err
			}
			if _, err := w.Write(zeros[:chunk]); err != nil {
				return err
			}
			if w.Buffered() > 32<<10 {
				if err := w.Flush(); err != nil {
					return err
				}
			}
			if !p.wait(ctx, chunk) {
				return ctx.Err()
			}
		}
	}
	return w.Flush()
}

// trickle sends the handshake one byte every 3 s.
func trickle(ctx context.Context, nc net.Conn, _ int) error {
	for i := 0; i < 1+2*1536; i++ {
		b := []byte{0}
		if i == 0 {
			b[0] = 3
		}
		if _, err := nc.Write(b); err != nil {
			return err
		}
		if !sleep(ctx, 3*time.Second) {
			return ctx.Err()
		}
	}
	return nil
}

// keepalive completes the handshake, connects, then sends a ping every 5 s and never publishes.
func keepalive(ctx context.Context, nc net.Conn, _ int) error {
	if err := handshake(nc); err != nil {
		return err
	}
	bw := bufio.NewWriter(nc)
	cw := rtmp.NewChunkWriter(bw)
	cmd, err := rtmp.EncodeAMF0(nil, "connect", 1.0, rtmp.Object{{Key: "app", Value: "live"}, {Key: "tcUrl", Value: "rtmp://127.0.0.1/live"}})
	if err != nil {
		return err
	}
	if err := cw.WriteMessage(rtmp.Message{CSID: 3, Type: rtmp.MsgCommandAMF0, Payload: cmd}); err != nil {
		return err
	}
	for ts := uint32(0); ; ts++ {
		ping := binary.BigEndian.AppendUint32([]byte{0, 6}, ts)
		if err := cw.WriteMessage(rtmp.Message{CSID: 2, Type: rtmp.MsgUserControl, Payload: ping}); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if !sleep(ctx, 5*time.Second) {
			return ctx.Err()
		}
	}
}
