package loadtest

import "testing"

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
			s := &trackStats{}
			s.add(tc.seqs[0] - 1) // seen before the window
			s.window(true)
			for _, q := range tc.seqs {
				s.add(q)
			}
			e, g, p := s.window(false)
			if e != tc.expected || g != tc.got || p != tc.packet {
				t.Fatalf("expected/got/packets = %d/%d/%d, want %d/%d/%d", e, g, p, tc.expected, tc.got, tc.packet)
			}
		})
	}
}
