package loadtest

import (
	"math/bits"
	"strings"
	"testing"
	"time"
)

func TestTrackStatsCountsGapsAsLoss(t *testing.T) {
	cases := []struct {
		name                  string
		seqs                  []uint16
		expected, got, packet int
	}{
		{"no loss", []uint16{10, 11, 12, 13}, 4, 4, 4},
		{"two lost", []uint16{10, 11, 14, 15}, 6, 4, 4},
		{"reordered and duplicated", []uint16{10, 12, 11, 12, 13}, 4, 4, 5},
		{"across the wrap", []uint16{65534, 65535, 0, 2}, 5, 4, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTrackStats(0, 0, false)
			s.add(tc.seqs[0]-1, 100, noLayer) // seen before the window
			s.window(true)
			for _, q := range tc.seqs {
				s.add(q, 100, noLayer)
			}
			c := s.window(false)
			if c.expected != tc.expected || c.got != tc.got || c.packets != tc.packet || c.bytes != 100*tc.packet {
				t.Fatalf("expected/got/packets/bytes = %d/%d/%d/%d, want %d/%d/%d/%d", c.expected, c.got, c.packets, c.bytes,
					tc.expected, tc.got, tc.packet, 100*tc.packet)
			}
		})
	}
}

func TestTrackStatsLayersAndFirstFrameInWindow(t *testing.T) {
	s := newTrackStats(0, 0, true)
	s.add(1, 10, 2) // before the window: not counted
	if !s.firstFrame(120*time.Millisecond) || s.firstFrame(500*time.Millisecond) {
		t.Fatal("only the first call records the first frame")
	}
	s.window(true)
	for i, l := range []int{noLayer, 2, noLayer, 0, noLayer, 0, 1, noLayer} { // changes: 2→0, 0→1
		s.add(uint16(2+i), 10, l)
	}
	r := s.result()
	if r.layers != 0b111 || r.switches != 2 || r.last != 1 || !r.hasFirst || r.first != 120*time.Millisecond {
		t.Fatalf("layers %03b switches %d last %d first %v (%v), want 111, 2, 1, 120ms", r.layers, r.switches, r.last, r.first, r.hasFirst)
	}
	s.window(true)
	s.add(20, 10, 0) // a change from the layer before the window counts
	s.add(21, 10, noLayer)
	if r := s.result(); r.layers != 0b001 || r.switches != 1 || r.last != 0 {
		t.Fatalf("second window: layers %03b switches %d last %d", r.layers, r.switches, r.last)
	}
	s.window(true)
	if r := s.result(); r.last != noLayer || r.switches != 0 {
		t.Fatalf("empty window: last %d switches %d", r.last, r.switches)
	}
}

func video(sub, pub int, expected, got int, first time.Duration, layers uint8) trackResult {
	last := noLayer
	if layers != 0 {
		last = bits.Len8(layers) - 1 // the highest layer seen
	}
	return trackResult{subscriber: sub, publisher: pub, video: true, first: first, hasFirst: first > 0,
		windowCounts: windowCounts{expected: expected, got: got, packets: got, bytes: got * 1000, layers: layers,
			switches: max(0, bits.OnesCount8(layers)-1), last: last}}
}

func audio(sub, pub int, expected, got int) trackResult {
	return trackResult{subscriber: sub, publisher: pub, windowCounts: windowCounts{expected: expected, got: got, packets: got, bytes: got * 100}}
}

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name      string
		tracks    []trackResult
		subs, pub int
		want      Summary
	}{
		{
			name: "2x2 room without loss",
			tracks: []trackResult{
				video(0, 0, 100, 100, 100*ms, 0b100), audio(0, 0, 50, 50), video(0, 1, 100, 100, 200*ms, 0b100), audio(0, 1, 50, 50),
				video(1, 0, 100, 100, 300*ms, 0b010), audio(1, 0, 50, 50), video(1, 1, 100, 100, 400*ms, 0b100), audio(1, 1, 50, 50),
			},
			subs: 2, pub: 2,
			want: Summary{Tracks: 8, VideoTracks: 4, Packets: 600, Bytes: 400*1000 + 200*100,
				FirstP50: 300 * ms, FirstP95: 400 * ms, OneLayer: 4, OnlyLayer: [8]int{1: 1, 2: 3}, LastLayer: [8]int{1: 1, 2: 3}},
		},
		{
			name: "loss per track, a missing camera and a switch",
			tracks: []trackResult{
				video(0, 0, 100, 90, 100*ms, 0b011), audio(0, 0, 50, 50), audio(0, 1, 50, 49),
				video(1, 0, 100, 100, 0, 0), audio(1, 0, 0, 0), video(1, 1, 200, 196, 150*ms, 0b001), audio(1, 1, 50, 50),
			},
			subs: 2, pub: 2,
			want: Summary{Tracks: 7, VideoTracks: 3, Packets: 90 + 50 + 49 + 100 + 196 + 50, Bytes: (90+100+196)*1000 + (50+49+50)*100,
				LossP50: 2, LossMax: 10, LossTotal: 100 * 15.0 / 550, Silent: 1,
				FirstP50: 150 * ms, FirstP95: 150 * ms, NoFrame: 2, MissingVideo: 1,
				OneLayer: 1, Switched: 1, Unmarked: 1, OnlyLayer: [8]int{0: 1}, Switches: 1, SwitchesMax: 1, LastLayer: [8]int{0: 1, 1: 1}},
		},
		{
			name:   "a camera arriving twice, a subscriber that never joined",
			tracks: []trackResult{video(0, 0, 10, 10, 50*ms, 0), video(0, 0, 10, 10, 60*ms, 0)},
			subs:   2, pub: 1,
			want: Summary{Tracks: 2, VideoTracks: 2, Packets: 20, Bytes: 20000, FirstP50: 60 * ms, FirstP95: 60 * ms,
				MissingVideo: 1, ExtraVideo: 1, Unmarked: 2},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := summarize(tc.tracks, tc.subs, tc.pub)
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestSumDrops(t *testing.T) {
	const table = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  12: 0100007F:9C41 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17
  13: 0100007F:9C42 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 5
  14: 0100007F:9C43 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 9999 2 0000000000000000 1000
  bad line
`
	cases := []struct {
		name   string
		inodes map[uint64]bool
		want   uint64
	}{
		{"one socket", map[uint64]bool{4242: true}, 17},
		{"two sockets", map[uint64]bool{4242: true, 4243: true}, 22},
		{"none of them", map[uint64]bool{1: true}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := sumDrops(strings.NewReader(table), tc.inodes); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}
