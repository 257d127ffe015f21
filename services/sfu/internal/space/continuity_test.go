package space

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestContinuity(t *testing.T) {
	type in struct {
		gen     uint64
		seq     uint16
		ts      uint32
		advance time.Duration // clock step before this packet
	}
	type out struct {
		ok  bool
		seq uint16
		ts  uint32
	}
	tests := []struct {
		name string
		pkts []in
		want []out
	}{
		{
			name: "one source passes unchanged",
			pkts: []in{{1, 100, 9000, 0}, {1, 101, 12000, 33 * time.Millisecond}, {1, 100, 9000, 0}},
			want: []out{{true, 100, 9000}, {true, 101, 12000}, {true, 100, 9000}},
		},
		{
			name: "a new source continues the numbering and the clock",
			pkts: []in{{1, 100, 9000, 0}, {1, 101, 12000, 0}, {2, 40000, 5, time.Second}, {2, 40001, 3005, 0}},
			want: []out{{true, 100, 9000}, {true, 101, 12000}, {true, 102, 12000 + 90000}, {true, 103, 12000 + 93000}},
		},
		{
			name: "a source behind the old one goes forward (both numbers wrap)",
			pkts: []in{{1, 65534, 4294967000, 0}, {3, 10, 0, 10 * time.Millisecond}, {3, 11, 900, 0}},
			want: []out{{true, 65534, 4294967000}, {true, 65535, 604}, {true, 0, 1504}},
		},
		{
			name: "the old source's late packets are dropped",
			pkts: []in{{1, 7, 70, 0}, {2, 500, 1000, 0}, {1, 8, 80, 0}, {2, 501, 1010, 0}},
			want: []out{{true, 7, 70}, {true, 8, 71}, {false, 0, 0}, {true, 9, 81}},
		},
		{
			name: "the first source of a track is not rebased",
			pkts: []in{{2, 300, 3000, 0}},
			want: []out{{true, 300, 3000}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			c := newContinuity(90000, func() time.Time { return now })
			for i, p := range tc.pkts {
				now = now.Add(p.advance)
				pkt := &rtp.Packet{Header: rtp.Header{SequenceNumber: p.seq, Timestamp: p.ts}}
				ok := c.rewrite(p.gen, pkt)
				w := tc.want[i]
				if ok != w.ok || (ok && (pkt.SequenceNumber != w.seq || pkt.Timestamp != w.ts)) {
					t.Fatalf("packet %d: got ok=%v seq=%d ts=%d, want ok=%v seq=%d ts=%d", i, ok, pkt.SequenceNumber, pkt.Timestamp, w.ok, w.seq, w.ts)
				}
			}
		})
	}
}
