package simulcast

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
)

type recorder struct {
	pkts []rtp.Packet
	err  error
}

func (r *recorder) WriteRTP(p *rtp.Packet) error {
	c := *p
	c.Payload = slices.Clone(p.Payload)
	r.pkts = append(r.pkts, c)
	return r.err
}

// clock is a manual clock for Forwarder.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// layer makes the packets of one simulcast layer: its own SSRC, sequence and timestamp bases,
// frames of perFrame packets at 30 fps, the first packet of a key frame when asked.
type layer struct {
	rid      string
	ssrc     uint32
	seq      uint16
	ts       uint32
	perFrame int
}

func (l *layer) frame(key bool) []*rtp.Packet {
	var out []*rtp.Packet
	for i := 0; i < l.perFrame; i++ {
		payload := []byte{0x00, 0x11, 0x02, 0x00, 0xaa, 0xbb, 0xcc} // continuation / interframe
		if i == 0 {
			payload = []byte{0x10, 0x11, 0x02, 0x00, 0xaa, 0xbb, 0xcc}
			if key {
				payload = append([]byte{0x10}, vp8Key...)
			}
		}
		out = append(out, &rtp.Packet{
			Header: rtp.Header{
				Version: 2, SSRC: l.ssrc, SequenceNumber: l.seq, Timestamp: l.ts, PayloadType: 96,
				Marker: i == l.perFrame-1, Extension: true, ExtensionProfile: 0xbede,
				Extensions: []rtp.Extension{{}},
			},
			Payload: payload,
		})
		_ = out[len(out)-1].SetExtension(10, []byte(l.rid))
		l.seq++
	}
	l.ts += 3000
	return out
}

func newTestForwarder(t *testing.T, target string) (*Forwarder, *recorder, *clock, *[]string) {
	t.Helper()
	rec := &recorder{}
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	var reqs []string
	f, err := NewForwarder(ForwarderOptions{
		MimeType: MimeTypeVP8, Writer: rec, Target: target, Now: clk.now,
		RequestKeyframe: func(rid string) { reqs = append(reqs, rid) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, rec, clk, &reqs
}

func write(t *testing.T, f *Forwarder, rid string, pkts []*rtp.Packet) {
	t.Helper()
	for _, p := range pkts {
		if err := f.Write(rid, p); err != nil {
			t.Fatal(err)
		}
	}
}

// checkContinuous: sequence numbers go up by one, timestamps never go back, one SSRC-free
// stream (the writer sets the SSRC).
func checkContinuous(t *testing.T, pkts []rtp.Packet) {
	t.Helper()
	for i := 1; i < len(pkts); i++ {
		if pkts[i].SequenceNumber != pkts[i-1].SequenceNumber+1 {
			t.Fatalf("packet %d: seq %d after %d", i, pkts[i].SequenceNumber, pkts[i-1].SequenceNumber)
		}
		if d := pkts[i].Timestamp - pkts[i-1].Timestamp; int32(d) < 0 {
			t.Fatalf("packet %d: timestamp %d after %d", i, pkts[i].Timestamp, pkts[i-1].Timestamp)
		}
	}
}

func TestForwarderStartsAtTargetKeyframe(t *testing.T) {
	f, rec, clk, reqs := newTestForwarder(t, "f")
	fl := &layer{rid: "f", ssrc: 3, seq: 100, ts: 5000, perFrame: 3}
	ql := &layer{rid: "q", ssrc: 1, seq: 60000, ts: 1, perFrame: 1}
	write(t, f, "q", ql.frame(true))
	write(t, f, "f", fl.frame(false))
	if len(rec.pkts) != 0 || f.Current() != "" {
		t.Fatalf("forwarded %d packets before the target's keyframe (current %q)", len(rec.pkts), f.Current())
	}
	if !slices.Equal(*reqs, []string{"f"}) {
		t.Fatalf("keyframe requests %v", *reqs)
	}
	clk.t = clk.t.Add(600 * time.Millisecond)
	write(t, f, "f", fl.frame(false))
	if !slices.Equal(*reqs, []string{"f", "f"}) {
		t.Fatalf("keyframe not requested again after KeyframeRetry: %v", *reqs)
	}
	write(t, f, "f", fl.frame(true))
	write(t, f, "q", ql.frame(false))
	write(t, f, "f", fl.frame(false))
	if len(rec.pkts) != 6 || f.Current() != "f" {
		t.Fatalf("forwarded %d packets, current %q", len(rec.pkts), f.Current())
	}
	if !IsVP8Keyframe(rec.pkts[0].Payload) {
		t.Fatal("first forwarded packet is not a keyframe")
	}
	checkContinuous(t, rec.pkts)
	for _, p := range rec.pkts {
		if p.Extension || len(p.Extensions) != 0 {
			t.Fatalf("publisher header extensions forwarded: %+v", p.Header)
		}
	}
	if st := f.Stats(); st.Packets != 6 || st.Switches != 0 || st.KeyframeRequests != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestForwarderSwitch(t *testing.T) {
	tests := []struct {
		name     string
		from, to string
	}{{"down f to q", "f", "q"}, {"up q to f", "q", "f"}, {"h to f", "h", "f"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, rec, clk, reqs := newTestForwarder(t, tt.from)
			layers := map[string]*layer{
				"q": {rid: "q", ssrc: 11, seq: 65530, ts: 4294967000, perFrame: 1},
				"h": {rid: "h", ssrc: 22, seq: 7, ts: 123456, perFrame: 2},
				"f": {rid: "f", ssrc: 33, seq: 30000, ts: 999, perFrame: 4},
			}
			send := func(key string) {
				if key != "" { // the keyframe's layer first, as if it came first on the wire
					write(t, f, key, layers[key].frame(true))
				}
				for _, rid := range []string{"q", "h", "f"} {
					if rid != key {
						write(t, f, rid, layers[rid].frame(false))
					}
				}
				clk.t = clk.t.Add(33 * time.Millisecond)
			}
			send(tt.from)
			for range 10 {
				send("")
			}
			before := len(rec.pkts)
			f.SetTarget(tt.to)
			if got := (*reqs)[len(*reqs)-1]; got != tt.to {
				t.Fatalf("SetTarget requested a keyframe of %q", got)
			}
			send("") // still the old layer until the new one's keyframe
			if f.Current() != tt.from || len(rec.pkts) == before {
				t.Fatalf("stopped forwarding %q before %q's keyframe", tt.from, tt.to)
			}
			at := len(rec.pkts)
			lastTS := rec.pkts[at-1].Timestamp
			clk.t = clk.t.Add(100 * time.Millisecond)
			send(tt.to)
			for range 10 {
				send("")
			}
			if f.Current() != tt.to {
				t.Fatalf("current %q", f.Current())
			}
			if !IsVP8Keyframe(rec.pkts[at].Payload) {
				t.Fatal("first packet after the switch is not a keyframe")
			}
			checkContinuous(t, rec.pkts)
			// The timestamp advances by the elapsed time (100 ms = 9000 at 90 kHz), not by
			// the difference of the layers' bases.
			if d := rec.pkts[at].Timestamp - lastTS; d < 9000 || d > 9000+3000 {
				t.Fatalf("timestamp jumped by %d across the switch", d)
			}
			for i, p := range rec.pkts {
				want := layers[tt.from].ssrc
				if i >= at {
					want = layers[tt.to].ssrc
				}
				if p.SSRC != want {
					t.Fatalf("packet %d is from SSRC %d, want %d (switch at %d)", i, p.SSRC, want, at)
				}
			}
			if st := f.Stats(); st.Switches != 1 {
				t.Fatalf("switches %d", st.Switches)
			}
		})
	}
}

func TestForwarderDropsNewLayerPacketsOlderThanItsKeyframe(t *testing.T) {
	f, rec, _, _ := newTestForwarder(t, "q")
	ql := &layer{rid: "q", seq: 10, perFrame: 1}
	hl := &layer{rid: "h", seq: 500, perFrame: 2}
	write(t, f, "q", ql.frame(true))
	f.SetTarget("h")
	old := hl.frame(false)
	key := hl.frame(true)
	write(t, f, "h", key)
	write(t, f, "h", old) // reordered: arrives after the keyframe
	write(t, f, "h", hl.frame(false))
	checkContinuous(t, rec.pkts)
	if len(rec.pkts) != 5 {
		t.Fatalf("%d packets", len(rec.pkts))
	}
	if st := f.Stats(); st.Dropped != 2 {
		t.Fatalf("dropped %d", st.Dropped)
	}
}

func TestForwarderLongRun(t *testing.T) {
	// More than 2^16 packets on one layer: nothing is dropped at the wraps.
	f, rec, _, _ := newTestForwarder(t, "f")
	fl := &layer{rid: "f", seq: 1000, perFrame: 1}
	write(t, f, "f", fl.frame(true))
	for range 70000 {
		p := fl.frame(false)[0]
		if err := f.Write("f", p); err != nil {
			t.Fatal(err)
		}
	}
	if st := f.Stats(); st.Packets != 70001 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	checkContinuous(t, rec.pkts)
}

func TestForwarderStopAndResume(t *testing.T) {
	f, rec, clk, _ := newTestForwarder(t, "h")
	hl := &layer{rid: "h", seq: 100, perFrame: 1}
	write(t, f, "h", hl.frame(true))
	write(t, f, "h", hl.frame(false))
	f.SetTarget("")
	write(t, f, "h", hl.frame(true))
	if len(rec.pkts) != 2 || f.Current() != "" {
		t.Fatalf("forwarding after SetTarget(\"\"): %d packets", len(rec.pkts))
	}
	clk.t = clk.t.Add(time.Second)
	f.SetTarget("h")
	write(t, f, "h", hl.frame(false))
	write(t, f, "h", hl.frame(true))
	write(t, f, "h", hl.frame(false))
	if len(rec.pkts) != 4 {
		t.Fatalf("%d packets", len(rec.pkts))
	}
	checkContinuous(t, rec.pkts)
	if st := f.Stats(); st.Switches != 0 {
		t.Fatalf("a resume counted as a switch: %+v", st)
	}
}

func TestForwarderDoesNotModifyInput(t *testing.T) {
	f, _, _, _ := newTestForwarder(t, "q")
	p := (&layer{rid: "q", seq: 9, ts: 77, perFrame: 1}).frame(true)[0]
	before := p.Clone()
	write(t, f, "q", []*rtp.Packet{p})
	if p.SequenceNumber != before.SequenceNumber || p.Timestamp != before.Timestamp || !p.Extension || len(p.Extensions) != len(before.Extensions) {
		t.Fatalf("input packet changed: %+v", p.Header)
	}
}

func TestForwarderWriterError(t *testing.T) {
	f, rec, _, _ := newTestForwarder(t, "q")
	rec.err = errors.New("closed")
	if err := f.Write("q", (&layer{rid: "q", perFrame: 1}).frame(true)[0]); !errors.Is(err, rec.err) {
		t.Fatalf("Write: %v", err)
	}
}

func TestNewForwarderBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    ForwarderOptions
		err  error
	}{
		{"no writer", ForwarderOptions{MimeType: MimeTypeVP8}, ErrBadOptions},
		{"vp9", ForwarderOptions{MimeType: "video/VP9", Writer: &recorder{}}, ErrUnsupportedCodec},
		{"negative retry", ForwarderOptions{MimeType: MimeTypeH264, Writer: &recorder{}, KeyframeRetry: -1}, ErrBadOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewForwarder(tt.o); !errors.Is(err, tt.err) {
				t.Fatalf("NewForwarder: %v, want %v", err, tt.err)
			}
		})
	}
}

// TestForwarderH264 switches at an H.264 keyframe (STAP-A with SPS, or FU-A start of an IDR)
// and not at other NAL units.
func TestForwarderH264(t *testing.T) {
	rec := &recorder{}
	f, err := NewForwarder(ForwarderOptions{MimeType: "video/h264", Writer: rec, Target: "h"})
	if err != nil {
		t.Fatal(err)
	}
	pkt := func(seq uint16, payload ...byte) *rtp.Packet {
		return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq) * 3000}, Payload: payload}
	}
	steps := []struct {
		rid     string
		p       *rtp.Packet
		current string
	}{
		{"h", pkt(10, 0x41, 0x9a), ""},                                            // non-IDR slice: wait
		{"h", pkt(11, 0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce), "h"}, // STAP-A SPS+PPS
		{"h", pkt(12, 0x7c, 0x85, 0x88), "h"},
		{"l", pkt(500, 0x7c, 0x85, 0x88), "h"}, // not the target yet
	}
	for i, st := range steps {
		if err := f.Write(st.rid, st.p); err != nil {
			t.Fatal(err)
		}
		if f.Current() != st.current {
			t.Fatalf("step %d: current %q, want %q", i, f.Current(), st.current)
		}
	}
	f.SetTarget("l")
	for i, st := range []struct {
		rid     string
		p       *rtp.Packet
		current string
	}{
		{"l", pkt(501, 0x7c, 0x05, 0x88), "h"}, // FU-A middle of an IDR: not a start
		{"l", pkt(502, 0x68, 0xce), "h"},       // PPS alone
		{"l", pkt(503, 0x65, 0x88), "l"},       // IDR
		{"l", pkt(504, 0x41, 0x9a), "l"},
	} {
		if err := f.Write(st.rid, st.p); err != nil {
			t.Fatal(err)
		}
		if f.Current() != st.current {
			t.Fatalf("after SetTarget step %d: current %q, want %q", i, f.Current(), st.current)
		}
	}
	checkContinuous(t, rec.pkts)
	if len(rec.pkts) != 4 {
		t.Fatalf("%d packets written", len(rec.pkts))
	}
}

// TestForwarderRandomized: whatever the interleaving of three layers' packets (with reordering
// inside each layer) and the target changes, the output has no duplicate sequence number, only
// forward timestamps across switches, and after every switch starts with a keyframe.
func TestForwarderRandomized(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		f, rec, clk, _ := newTestForwarder(t, "q")
		layers := []*layer{
			{rid: "q", ssrc: 1, seq: uint16(rng.Uint32()), ts: rng.Uint32(), perFrame: 1},
			{rid: "h", ssrc: 2, seq: uint16(rng.Uint32()), ts: rng.Uint32(), perFrame: 2},
			{rid: "f", ssrc: 3, seq: uint16(rng.Uint32()), ts: rng.Uint32(), perFrame: 4},
		}
		seen := map[uint16]bool{}
		for step := 0; step < 3000; step++ {
			clk.t = clk.t.Add(time.Duration(rng.IntN(20)) * time.Millisecond)
			if rng.IntN(100) == 0 {
				f.SetTarget(rids[rng.IntN(3)])
			}
			l := layers[rng.IntN(3)]
			pkts := l.frame(rng.IntN(10) == 0)
			if len(pkts) > 1 && rng.IntN(4) == 0 { // reorder inside the frame
				i := rng.IntN(len(pkts) - 1)
				pkts[i], pkts[i+1] = pkts[i+1], pkts[i]
			}
			before := len(rec.pkts)
			write(t, f, l.rid, pkts)
			for _, p := range rec.pkts[before:] {
				if seen[p.SequenceNumber] {
					t.Fatalf("seed %d step %d: sequence number %d written twice", seed, step, p.SequenceNumber)
				}
				seen[p.SequenceNumber] = true
			}
		}
		// In sequence order: a change of SSRC (layer) is at a keyframe and moves time forward.
		out := slices.Clone(rec.pkts)
		base := out[0].SequenceNumber
		slices.SortFunc(out, func(a, b rtp.Packet) int { return int(a.SequenceNumber-base) - int(b.SequenceNumber-base) })
		for i := 1; i < len(out); i++ {
			if out[i].SSRC != out[i-1].SSRC {
				if !IsVP8Keyframe(out[i].Payload) {
					t.Fatalf("seed %d: layer change at seq %d without a keyframe", seed, out[i].SequenceNumber)
				}
				if int32(out[i].Timestamp-out[i-1].Timestamp) <= 0 {
					t.Fatalf("seed %d: timestamp went back across a switch: %d -> %d", seed, out[i-1].Timestamp, out[i].Timestamp)
				}
			}
		}
	}
}

func TestForwarderRestart(t *testing.T) {
	f, rec, clk, reqs := newTestForwarder(t, "h")
	old := &layer{rid: "h", seq: 100, ts: 5000, perFrame: 2}
	write(t, f, "h", old.frame(true))
	write(t, f, "h", old.frame(false))
	// The publisher reconnected: the same rid from a new source, numbered behind the old one.
	f.Restart()
	clk.t = clk.t.Add(2 * time.Second)
	fresh := &layer{rid: "h", seq: 20, ts: 77, perFrame: 2}
	write(t, f, "h", fresh.frame(false))
	if len(rec.pkts) != 4 {
		t.Fatalf("forwarded the new source before its keyframe: %d packets", len(rec.pkts))
	}
	write(t, f, "h", fresh.frame(true))
	write(t, f, "h", fresh.frame(false))
	if len(rec.pkts) != 8 || f.Current() != "h" {
		t.Fatalf("%d packets, current %q", len(rec.pkts), f.Current())
	}
	checkContinuous(t, rec.pkts)
	if d := rec.pkts[4].Timestamp - rec.pkts[3].Timestamp; d < 2*90000 || d > 2*90000+3000 {
		t.Fatalf("timestamp advanced by %d over 2 s", d)
	}
	if !slices.Equal(*reqs, []string{"h", "h"}) {
		t.Fatalf("keyframe requests %v", *reqs)
	}
	if st := f.Stats(); st.Switches != 0 {
		t.Fatalf("a restart counted as a switch: %+v", st)
	}
}
