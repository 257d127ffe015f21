package rtmp

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestReadCoalesce: with coalescing a trickle of small writes (100 bytes every 4 ms, as an
// encoder flushing each packet) is taken in a few reads, at most one per coalesce interval;
// without it, in many. No byte is lost either way.
func TestReadCoalesce(t *testing.T) {
	reads := func(coalesce time.Duration) (uint64, time.Duration) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		const writes, size = 50, 100
		go func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, size)
			for i := range writes {
				buf[0] = byte(i)
				if _, err := c.Write(buf); err != nil {
					return
				}
				time.Sleep(4 * time.Millisecond)
			}
		}()
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		dc := &deadlineConn{Conn: nc, idle: 5 * time.Second, coalesce: coalesce}
		buf := make([]byte, 64<<10)
		got := 0
		start := time.Now()
		for got < writes*size {
			n, err := dc.Read(buf)
			got += n
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if got != writes*size {
			t.Fatalf("coalesce %v: read %d bytes, want %d", coalesce, got, writes*size)
		}
		el := time.Since(start)
		t.Logf("coalesce %v: %d reads in %v", coalesce, dc.reads, el.Round(time.Millisecond))
		return dc.reads, el
	}
	with, el := reads(40 * time.Millisecond)
	without, _ := reads(0)
	// At most one read per 40 ms of the trickle, plus the first and the last.
	if limit := uint64(el/(40*time.Millisecond)) + 2; with > limit {
		t.Fatalf("coalescing: %d reads in %v, want at most %d", with, el, limit)
	}
	if without <= 2*with {
		t.Fatalf("without coalescing %d reads, with %d: the trickle did not arrive in small pieces", without, with)
	}
}
