package hls

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/asticode/go-astits"
)

// TestTSMuxerMatchesAstits: the segment writer's own packetizer writes exactly the bytes
// astits.Muxer writes for the same calls (the segmenter's shapes: video with PCR and random
// access on keyframes, audio without an adaptation field, PTS only or PTS and DTS), over
// payload sizes around every packet boundary, a track added mid-epoch and a PCR PID change.
func TestTSMuxerMatchesAstits(t *testing.T) {
	var want, got bytes.Buffer
	ref := astits.NewMuxer(context.Background(), &want, astits.MuxerOptTablesRetransmitPeriod(math.MaxInt32))
	m := newTSMuxer(&got)
	type muxer interface {
		AddElementaryStream(astits.PMTElementaryStream) error
		SetPCRPID(uint16)
		WriteData(*astits.MuxerData) (int, error)
	}
	both := func(f func(mx muxer) error) {
		t.Helper()
		e1, e2 := f(ref), f(m)
		if (e1 == nil) != (e2 == nil) {
			t.Fatalf("errors differ: astits %v, tsMuxer %v", e1, e2)
		}
	}
	both(func(mx muxer) error {
		return mx.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: videoPID, StreamType: astits.StreamTypeH264Video})
	})
	both(func(mx muxer) error { mx.SetPCRPID(videoPID); return nil })
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 2, 150, 157, 158, 159, 160, 161, 162, 163, 164, 165, 166, 167, 168, 169, 170, 171, 175, 176, 177, 178,
		182, 183, 184, 185, 340, 341, 342, 343, 344, 345, 346, 347, 348, 360, 361, 362, 366, 367, 368, 369, 5000, 60000, 70000}
	write := func(pid uint16, size int, key bool, ts int64, withDTS bool) {
		t.Helper()
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.IntN(256))
		}
		mk := func() *astits.MuxerData {
			var af *astits.PacketAdaptationField
			if pid == videoPID {
				af = &astits.PacketAdaptationField{HasPCR: true, PCR: &astits.ClockReference{Base: ts}, RandomAccessIndicator: key}
			}
			oh := &astits.PESOptionalHeader{MarkerBits: 2, DataAlignmentIndicator: true,
				PTSDTSIndicator: astits.PTSDTSIndicatorOnlyPTS, PTS: &astits.ClockReference{Base: ts + 3003}}
			if withDTS {
				oh.PTSDTSIndicator, oh.DTS = astits.PTSDTSIndicatorBothPresent, &astits.ClockReference{Base: ts}
			}
			sid := uint8(0xc0)
			if pid == videoPID {
				sid = 0xe0
			}
			return &astits.MuxerData{PID: pid, AdaptationField: af, PES: &astits.PESData{
				Header: &astits.PESHeader{StreamID: sid, OptionalHeader: oh}, Data: data}}
		}
		both(func(mx muxer) error { _, err := mx.WriteData(mk()); return err })
	}
	ts := int64(1<<33 - 90000*5) // crosses the 33-bit wrap
	for round := range 3 {
		if round == 1 {
			both(func(mx muxer) error {
				return mx.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: audioPID, StreamType: astits.StreamTypeAACAudio})
			})
		}
		for i, sz := range sizes {
			write(videoPID, sz, i%7 == 0, ts&(1<<33-1), i%2 == 0)
			if round > 0 {
				write(audioPID, sz%2000+1, false, ts&(1<<33-1), false)
			}
			ts += 3003
		}
	}
	both(func(mx muxer) error { mx.SetPCRPID(audioPID); return nil })
	for _, sz := range sizes[:10] {
		write(audioPID, sz, true, ts, false)
		write(videoPID, sz, false, ts, true)
		ts += 1920
	}
	both(func(mx muxer) error { _, err := mx.WriteData(&astits.MuxerData{PID: 0x999}); return err })
	if want.Len()%188 != 0 || want.Len() == 0 {
		t.Fatalf("astits wrote %d bytes", want.Len())
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		for i := range min(got.Len(), want.Len()) {
			if got.Bytes()[i] != want.Bytes()[i] {
				t.Fatalf("output differs at byte %d (packet %d, offset %d): got %#x, want %#x (lengths %d, %d)",
					i, i/188, i%188, got.Bytes()[i], want.Bytes()[i], got.Len(), want.Len())
			}
		}
		t.Fatalf("lengths differ: got %d, want %d", got.Len(), want.Len())
	}
}

func TestTSMuxerRefusesWhatItCannotWrite(t *testing.T) {
	m := newTSMuxer(&bytes.Buffer{})
	_ = m.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: videoPID, StreamType: astits.StreamTypeH264Video})
	m.SetPCRPID(videoPID)
	oh := &astits.PESOptionalHeader{PTSDTSIndicator: astits.PTSDTSIndicatorOnlyPTS, PTS: &astits.ClockReference{}}
	cases := map[string]*astits.MuxerData{
		"OPCR":          {PID: videoPID, AdaptationField: &astits.PacketAdaptationField{HasOPCR: true}, PES: &astits.PESData{Header: &astits.PESHeader{StreamID: 0xe0, OptionalHeader: oh}, Data: []byte{1}}},
		"no PES header": {PID: videoPID, PES: &astits.PESData{Data: []byte{1}}},
		"ESCR":          {PID: videoPID, PES: &astits.PESData{Header: &astits.PESHeader{StreamID: 0xe0, OptionalHeader: &astits.PESOptionalHeader{HasESCR: true, PTSDTSIndicator: astits.PTSDTSIndicatorOnlyPTS, PTS: &astits.ClockReference{}}}, Data: []byte{1}}},
		"no PTS":        {PID: videoPID, PES: &astits.PESData{Header: &astits.PESHeader{StreamID: 0xe0, OptionalHeader: &astits.PESOptionalHeader{}}, Data: []byte{1}}},
		"stream id 0":   {PID: videoPID, PES: &astits.PESData{Header: &astits.PESHeader{OptionalHeader: oh}, Data: []byte{1}}},
	}
	for name, d := range cases {
		if _, err := m.WriteData(d); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func BenchmarkTSWrite(b *testing.B) {
	data := make([]byte, 12000)
	run := func(b *testing.B, mx interface {
		WriteData(*astits.MuxerData) (int, error)
	}) {
		b.SetBytes(int64(len(data)))
		for i := range b.N {
			ts := int64(i) * 3003
			_, err := mx.WriteData(&astits.MuxerData{PID: videoPID,
				AdaptationField: &astits.PacketAdaptationField{HasPCR: true, PCR: &astits.ClockReference{Base: ts}},
				PES: &astits.PESData{Header: &astits.PESHeader{StreamID: 0xe0, OptionalHeader: &astits.PESOptionalHeader{
					DataAlignmentIndicator: true, PTSDTSIndicator: astits.PTSDTSIndicatorBothPresent,
					PTS: &astits.ClockReference{Base: ts + 3003}, DTS: &astits.ClockReference{Base: ts}}}, Data: data}})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("astits", func(b *testing.B) {
		m := astits.NewMuxer(context.Background(), discard{}, astits.MuxerOptTablesRetransmitPeriod(math.MaxInt32))
		_ = m.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: videoPID, StreamType: astits.StreamTypeH264Video})
		m.SetPCRPID(videoPID)
		run(b, m)
	})
	b.Run("tsMuxer", func(b *testing.B) {
		m := newTSMuxer(discard{})
		_ = m.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: videoPID, StreamType: astits.StreamTypeH264Video})
		m.SetPCRPID(videoPID)
		run(b, m)
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
