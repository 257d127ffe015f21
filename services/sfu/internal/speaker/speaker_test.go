package speaker

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestParseAudioLevel(t *testing.T) {
	tests := []struct {
		name  string
		ext   []byte
		level uint8
		voice bool
		err   error
	}{
		{"loud with voice", []byte{0x80 | 3}, 3, true, nil},
		{"silence no voice", []byte{127}, 127, false, nil},
		{"loudest", []byte{0x00}, 0, false, nil},
		{"voice flag only", []byte{0x80}, 0, true, nil},
		{"empty", []byte{}, 0, false, ErrBadExtension},
		{"nil", nil, 0, false, ErrBadExtension},
		{"two bytes", []byte{0x05, 0x00}, 0, false, ErrBadExtension},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			level, voice, err := ParseAudioLevel(tt.ext)
			if !errors.Is(err, tt.err) || level != tt.level || voice != tt.voice {
				t.Fatalf("ParseAudioLevel(%x) = %d, %v, %v; want %d, %v, %v", tt.ext, level, voice, err, tt.level, tt.voice, tt.err)
			}
		})
	}
}

func FuzzParseAudioLevel(f *testing.F) {
	for _, s := range [][]byte{{}, {0x80}, {0x7f}, {0xff}, {1, 2}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ext []byte) {
		level, voice, err := ParseAudioLevel(ext)
		if len(ext) != 1 {
			if err == nil {
				t.Fatalf("accepted %d bytes", len(ext))
			}
			return
		}
		if err != nil || level > 127 {
			t.Fatalf("ParseAudioLevel(%x) = %d, %v", ext, level, err)
		}
		// Re-encoding gives the same byte back.
		b := level
		if voice {
			b |= 0x80
		}
		if b != ext[0] {
			t.Fatalf("round trip %x -> %x", ext[0], b)
		}
	})
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"defaults", Options{}, true},
		{"all set", Options{SilenceLevel: 60, MinActiveRatio: 1, StartAfter: time.Second, StopAfter: time.Second, Smoothing: time.Second, OrderMargin: 0.1, MaxSpeakers: 1}, true},
		{"silence level over 127", Options{SilenceLevel: 128}, false},
		{"ratio over 1", Options{MinActiveRatio: 1.5}, false},
		{"negative ratio", Options{MinActiveRatio: -0.1}, false},
		{"negative start", Options{StartAfter: -time.Second}, false},
		{"negative stop", Options{StopAfter: -time.Second}, false},
		{"negative smoothing", Options{Smoothing: -time.Second}, false},
		{"negative margin", Options{OrderMargin: -1}, false},
		{"negative max", Options{MaxSpeakers: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(tt.o)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadOptions)) || (d == nil) == tt.ok {
				t.Fatalf("New(%+v) = %v, %v", tt.o, d, err)
			}
		})
	}
}

// voice: participant id sends packets every 20 ms from..to (ms since start) at level.
type voice struct {
	id       string
	from, to int
	level    uint8
}

// check: the speakers Tick returned at ms (ticks every 200 ms).
type check struct {
	at       int
	speakers []string
}

func TestDetector(t *testing.T) {
	tests := []struct {
		name   string
		o      Options
		voices []voice
		checks []check
	}{
		{
			name:   "continuous speech starts after StartAfter",
			voices: []voice{{"a", 0, 3000, 20}},
			checks: []check{{200, nil}, {400, nil}, {600, []string{"a"}}, {3000, []string{"a"}}},
		},
		{
			name: "a cough does not make a speaker",
			voices: []voice{
				{"a", 0, 300, 5},
				{"a", 300, 3000, 127},
			},
			checks: []check{{200, nil}, {400, nil}, {600, nil}, {3000, nil}},
		},
		{
			name:   "a cough does not take over from the speaker",
			voices: []voice{{"a", 0, 4000, 30}, {"b", 2000, 2300, 0}, {"b", 2300, 4000, 127}},
			checks: []check{{1000, []string{"a"}}, {2200, []string{"a"}}, {2600, []string{"a"}}, {4000, []string{"a"}}},
		},
		{
			name: "pauses between words keep the speaker; a long silence stops it",
			voices: []voice{
				{"a", 0, 2000, 25},
				{"a", 2000, 2800, 127}, // 0.8 s pause
				{"a", 2800, 4000, 25},
				{"a", 4000, 8000, 127},
			},
			checks: []check{{1000, []string{"a"}}, {2600, []string{"a"}}, {3000, []string{"a"}}, {5200, []string{"a"}}, {5600, nil}, {8000, nil}},
		},
		{
			name:   "background noise under the silence threshold is not speech",
			voices: []voice{{"a", 0, 4000, 70}},
			checks: []check{{1000, nil}, {4000, nil}},
		},
		{
			name:   "a custom silence threshold admits quieter speech",
			o:      Options{SilenceLevel: 80},
			voices: []voice{{"a", 0, 4000, 70}},
			checks: []check{{1000, []string{"a"}}},
		},
		{
			name:   "muted (no packets) stops after StopAfter",
			voices: []voice{{"a", 0, 2000, 20}},
			checks: []check{{1800, []string{"a"}}, {3400, []string{"a"}}, {3600, nil}},
		},
		{
			name:   "louder first",
			voices: []voice{{"a", 0, 3000, 40}, {"b", 0, 3000, 10}},
			checks: []check{{1000, []string{"b", "a"}}},
		},
		{
			name:   "the first speaker stays ahead of a slightly louder one",
			voices: []voice{{"a", 0, 4000, 22}, {"b", 1000, 4000, 20}},
			checks: []check{{800, []string{"a"}}, {2000, []string{"a", "b"}}, {4000, []string{"a", "b"}}},
		},
		{
			name:   "a much louder newcomer overtakes",
			voices: []voice{{"a", 0, 4000, 40}, {"b", 1000, 4000, 5}},
			checks: []check{{800, []string{"a"}}, {4000, []string{"b", "a"}}},
		},
		{
			name:   "MaxSpeakers keeps the loudest",
			o:      Options{MaxSpeakers: 2},
			voices: []voice{{"a", 0, 3000, 40}, {"b", 0, 3000, 10}, {"c", 0, 3000, 25}},
			checks: []check{{2000, []string{"b", "c"}}},
		},
		{
			name:   "sparse loud packets (less than MinActiveRatio) are not speech",
			voices: sparse("a", 0, 3000, 10, 3), // one packet in three loud
			checks: []check{{1000, nil}, {3000, nil}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Unix(1_700_000_000, 0)
			end := 0
			for _, c := range tt.checks {
				end = max(end, c.at)
			}
			want := map[int][]string{}
			for _, c := range tt.checks {
				want[c.at] = c.speakers
			}
			var last []string
			for ms := 0; ms <= end; ms += 20 {
				at := start.Add(time.Duration(ms) * time.Millisecond)
				if ms > 0 && ms%200 == 0 {
					got, changed := d.Tick(at)
					if changed == slices.Equal(got, last) {
						t.Fatalf("at %d ms: changed=%v but %v -> %v", ms, changed, last, got)
					}
					last = slices.Clone(got)
					if w, ok := want[ms]; ok && !slices.Equal(got, w) {
						t.Fatalf("at %d ms: speakers %v, want %v", ms, got, w)
					}
				}
				for _, v := range tt.voices {
					if ms >= v.from && ms < v.to {
						d.Observe(v.id, v.level, at)
					}
				}
			}
		})
	}
}

// sparse makes one loud packet in every n (the others silent) for id over from..to.
func sparse(id string, from, to int, level uint8, n int) []voice {
	var vs []voice
	for ms := from; ms < to; ms += 20 {
		l := uint8(127)
		if (ms/20)%n == 0 {
			l = level
		}
		vs = append(vs, voice{id, ms, ms + 20, l})
	}
	return vs
}

func TestRemoveReportsChange(t *testing.T) {
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_700_000_000, 0)
	var got []string
	for i := 0; i < 50; i++ {
		at = at.Add(20 * time.Millisecond)
		d.Observe("a", 20, at)
		d.Observe("b", 30, at)
		if i%10 == 9 {
			got, _ = d.Tick(at)
		}
	}
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("speakers %v", got)
	}
	d.Remove("a")
	at = at.Add(20 * time.Millisecond)
	d.Observe("b", 30, at)
	got, changed := d.Tick(at)
	if !changed || !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after Remove: %v changed=%v", got, changed)
	}
	got, changed = d.Tick(at.Add(time.Millisecond))
	if changed || !slices.Equal(got, []string{"b"}) {
		t.Fatalf("second tick: %v changed=%v", got, changed)
	}
}

func TestTickUnchangedDoesNotAllocate(t *testing.T) {
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"a", "b", "c"}
	at := time.Unix(1_700_000_000, 0)
	step := func() {
		for range 10 {
			at = at.Add(20 * time.Millisecond)
			for i, id := range ids {
				d.Observe(id, uint8(10+20*i), at)
			}
		}
		d.Tick(at)
	}
	for range 20 {
		step()
	}
	if n := testing.AllocsPerRun(100, step); n != 0 {
		t.Fatalf("steady-state Observe+Tick allocates %v times", n)
	}
}

// BenchmarkObserve: one audio packet's level.
func BenchmarkObserve(b *testing.B) {
	d, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	ids := []string{"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"}
	at := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Observe(ids[i%len(ids)], uint8(i%90), at)
		i++
	}
}

// BenchmarkWindow: one 200 ms window of a space with n participants: 10 packets (20 ms Opus
// frames) observed for each, half of them speaking, then the Tick.
func BenchmarkWindow(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("participants=%d", n), func(b *testing.B) {
			d, err := New(Options{MaxSpeakers: 8})
			if err != nil {
				b.Fatal(err)
			}
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("participant-%d", i)
			}
			at := time.Unix(1_700_000_000, 0)
			observe := func() {
				for range 10 {
					at = at.Add(20 * time.Millisecond)
					for i, id := range ids {
						level := uint8(127)
						if i%2 == 0 {
							level = uint8(10 + i%40)
						}
						d.Observe(id, level, at)
					}
				}
			}
			for range 10 {
				observe()
				d.Tick(at)
			}
			b.ReportAllocs()
			for b.Loop() {
				observe()
				d.Tick(at)
			}
		})
	}
}
