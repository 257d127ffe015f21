package hls

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEndRecordingAfterAbort: a writer that lost the right to write stops at once (its open
// segment is not listed and later packets are refused); whoever ends the recording later gets
// ENDLIST and the duration of exactly the listed segments, and nothing is recorded twice.
func TestEndRecordingAfterAbort(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	s, _ := newSeg(t, SegmenterConfig{Dir: dir, TargetDuration: time.Second})
	write(t, s, media(0, 3500*ms, time.Second, true, true)) // segments [0,1) [1,2) [2,3) listed, [3,…) open
	listed := s.Duration()
	if s.SegmentCount() != 3 {
		t.Fatalf("%d segments listed, want 3", s.SegmentCount())
	}
	before := readFile(t, filepath.Join(dir, VODPlaylist))
	s.Abort()
	if err := s.WritePacket(media(3500*ms, 3600*ms, time.Second, true, false)[0]); !errors.Is(err, ErrFinished) {
		t.Fatalf("WritePacket after Abort = %v, want ErrFinished", err)
	}
	if got := readFile(t, filepath.Join(dir, VODPlaylist)); got != before {
		t.Fatalf("Abort rewrote the playlist:\n%s", got)
	}
	cfg := SegmenterConfig{Dir: dir, TargetDuration: time.Second}
	for i := range 2 { // idempotent
		d, err := EndRecording(cfg)
		if err != nil || d != listed {
			t.Fatalf("EndRecording #%d = %v, %v; want %v", i, d, err, listed)
		}
	}
	vod := readFile(t, filepath.Join(dir, VODPlaylist))
	if !strings.Contains(vod, "#EXT-X-ENDLIST") || !strings.Contains(vod, "#EXT-X-PLAYLIST-TYPE:VOD") ||
		strings.Count(vod, "#EXTINF") != 3 || strings.Contains(vod, "DISCONTINUITY") {
		t.Fatalf("ended playlist:\n%s", vod)
	}
	if live := readFile(t, filepath.Join(dir, LivePlaylist)); !strings.Contains(live, "#EXT-X-ENDLIST") {
		t.Fatalf("live playlist not ended:\n%s", live)
	}
	// Nothing recorded: nothing to end, and no directory is made.
	empty := filepath.Join(t.TempDir(), "none")
	if d, err := EndRecording(SegmenterConfig{Dir: empty}); err != nil || d != 0 {
		t.Fatalf("EndRecording of nothing = %v, %v", d, err)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Fatalf("EndRecording made %s: %v", empty, err)
	}
}

// TestFinishRefusesWrites: after Finish nothing is appended, ever.
func TestFinishRefusesWrites(t *testing.T) {
	s, _ := newSeg(t, SegmenterConfig{TargetDuration: time.Second})
	write(t, s, media(0, 2500*ms, time.Second, true, true))
	if _, err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	n := s.SegmentCount()
	for _, p := range media(2500*ms, 5*time.Second, time.Second, true, true) {
		if err := s.WritePacket(p); !errors.Is(err, ErrFinished) {
			t.Fatalf("WritePacket after Finish = %v", err)
		}
	}
	s.Discontinuity()
	if err := s.Stop(); err != nil || s.SegmentCount() != n {
		t.Fatalf("Stop after Finish = %v, %d segments (was %d)", err, s.SegmentCount(), n)
	}
}
