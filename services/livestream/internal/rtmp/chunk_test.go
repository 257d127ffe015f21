package rtmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
)

// Raw chunk builders, straight from the RTMP spec's figures (5.3.1).

func basicHeader(format uint8, csid uint32) []byte {
	return appendBasicHeader(nil, format, csid)
}

func u24(v uint32) []byte { return []byte{byte(v >> 16), byte(v >> 8), byte(v)} }

// type0 builds a type 0 chunk header; ts >= 0xffffff is written as an extended timestamp.
func type0(csid, ts, length uint32, typ uint8, sid uint32) []byte {
	b := basicHeader(0, csid)
	field := min(ts, 0xffffff)
	b = append(b, u24(field)...)
	b = append(b, u24(length)...)
	b = append(b, typ)
	b = binary.LittleEndian.AppendUint32(b, sid)
	if field == 0xffffff {
		b = binary.BigEndian.AppendUint32(b, ts)
	}
	return b
}

func type1(csid, delta, length uint32, typ uint8) []byte {
	b := basicHeader(1, csid)
	field := min(delta, 0xffffff)
	b = append(b, u24(field)...)
	b = append(b, u24(length)...)
	b = append(b, typ)
	if field == 0xffffff {
		b = binary.BigEndian.AppendUint32(b, delta)
	}
	return b
}

func type2(csid, delta uint32) []byte {
	b := basicHeader(2, csid)
	field := min(delta, 0xffffff)
	b = append(b, u24(field)...)
	if field == 0xffffff {
		b = binary.BigEndian.AppendUint32(b, delta)
	}
	return b
}

// type3 builds a type 3 header; ext is the extended timestamp to repeat (0 = none).
func type3(csid uint32, ext uint32) []byte {
	b := basicHeader(3, csid)
	if ext != 0 {
		b = binary.BigEndian.AppendUint32(b, ext)
	}
	return b
}

func fill(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

type wantMsg struct {
	csid uint32
	typ  uint8
	sid  uint32
	ts   uint32
	data []byte
}

func TestChunkReader(t *testing.T) {
	p300 := cat(fill(128, 'a'), fill(128, 'b'), fill(44, 'c'))
	cases := []struct {
		name  string
		input []byte
		want  []wantMsg
	}{
		{
			name:  "type 0 single chunk, little-endian stream id",
			input: cat(type0(3, 1000, 5, MsgCommandAMF0, 0x01020304), []byte("hello")),
			want:  []wantMsg{{3, MsgCommandAMF0, 0x01020304, 1000, []byte("hello")}},
		},
		{
			name:  "message split into type 3 continuation chunks",
			input: cat(type0(4, 40, 300, MsgAudio, 1), p300[:128], type3(4, 0), p300[128:256], type3(4, 0), p300[256:]),
			want:  []wantMsg{{4, MsgAudio, 1, 40, p300}},
		},
		{
			// The spec's example 1 (5.3.2.1): audio with a constant delta.
			name: "type 2 then type 3 new messages reuse the delta",
			input: cat(type0(3, 1000, 4, MsgAudio, 12346), []byte("aaaa"),
				type2(3, 20), []byte("bbbb"),
				type3(3, 0), []byte("cccc"),
				type3(3, 0), []byte("dddd")),
			want: []wantMsg{
				{3, MsgAudio, 12346, 1000, []byte("aaaa")},
				{3, MsgAudio, 12346, 1020, []byte("bbbb")},
				{3, MsgAudio, 12346, 1040, []byte("cccc")},
				{3, MsgAudio, 12346, 1060, []byte("dddd")},
			},
		},
		{
			name: "type 1 changes length and type, keeps stream id",
			input: cat(type0(6, 0, 2, MsgVideo, 1), []byte("v0"),
				type1(6, 33, 3, MsgVideo), []byte("v33"),
				type1(6, 34, 1, MsgAudio), []byte("x")),
			want: []wantMsg{
				{6, MsgVideo, 1, 0, []byte("v0")},
				{6, MsgVideo, 1, 33, []byte("v33")},
				{6, MsgAudio, 1, 67, []byte("x")},
			},
		},
		{
			name:  "type 3 new message after type 0 adds the type 0 timestamp",
			input: cat(type0(3, 500, 1, MsgAudio, 1), []byte("a"), type3(3, 0), []byte("b")),
			want:  []wantMsg{{3, MsgAudio, 1, 500, []byte("a")}, {3, MsgAudio, 1, 1000, []byte("b")}},
		},
		{
			name: "extended timestamp on type 0 and on its type 3 continuations",
			input: cat(type0(6, 0x01000000, 300, MsgVideo, 1), p300[:128],
				type3(6, 0x01000000), p300[128:256],
				type3(6, 0x01000000), p300[256:]),
			want: []wantMsg{{6, MsgVideo, 1, 0x01000000, p300}},
		},
		{
			name: "extended delta on type 1 and type 3 continuation",
			input: cat(type0(6, 0xfffff0, 1, MsgVideo, 1), []byte("a"),
				type1(6, 0x01000000, 200, MsgVideo), fill(128, 'x'), type3(6, 0x01000000), fill(72, 'x'),
				type1(6, 10, 1, MsgVideo), []byte("y")),
			want: []wantMsg{
				{6, MsgVideo, 1, 0xfffff0, []byte("a")},
				{6, MsgVideo, 1, 0xfffff0 + 0x01000000, fill(200, 'x')},
				{6, MsgVideo, 1, 0xfffff0 + 0x01000000 + 10, []byte("y")},
			},
		},
		{
			name: "set chunk size applies to the following chunks",
			input: cat(type0(2, 0, 4, MsgSetChunkSize, 0), be32(4096),
				type0(6, 0, 1000, MsgVideo, 1), fill(1000, 'z')),
			want: []wantMsg{{2, MsgSetChunkSize, 0, 0, be32(4096)}, {6, MsgVideo, 1, 0, fill(1000, 'z')}},
		},
		{
			name: "interleaved chunk streams keep separate state",
			input: cat(type0(4, 10, 300, MsgAudio, 1), p300[:128],
				type0(6, 20, 200, MsgVideo, 1), fill(128, 'v'),
				type3(4, 0), p300[128:256],
				type3(6, 0), fill(72, 'v'),
				type3(4, 0), p300[256:]),
			want: []wantMsg{{6, MsgVideo, 1, 20, fill(200, 'v')}, {4, MsgAudio, 1, 10, p300}},
		},
		{
			name: "two- and three-byte basic headers",
			input: cat(type0(100, 1, 1, MsgAudio, 1), []byte("a"),
				type0(400, 2, 1, MsgVideo, 1), []byte("b"),
				type3(100, 0), []byte("c")),
			want: []wantMsg{{100, MsgAudio, 1, 1, []byte("a")}, {400, MsgVideo, 1, 2, []byte("b")}, {100, MsgAudio, 1, 2, []byte("c")}},
		},
		{
			name: "abort drops the partial message",
			input: cat(type0(4, 0, 300, MsgAudio, 1), p300[:128],
				type0(2, 0, 4, MsgAbort, 0), be32(4),
				type0(4, 5, 2, MsgAudio, 1), []byte("ok")),
			want: []wantMsg{{2, MsgAbort, 0, 0, be32(4)}, {4, MsgAudio, 1, 5, []byte("ok")}},
		},
		{
			name:  "empty message",
			input: cat(type0(3, 7, 0, MsgCommandAMF0, 0), type0(3, 8, 1, MsgAudio, 0), []byte("x")),
			want:  []wantMsg{{3, MsgCommandAMF0, 0, 7, []byte{}}, {3, MsgAudio, 0, 8, []byte("x")}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewChunkReader(bytes.NewReader(tc.input))
			for i, w := range tc.want {
				m, err := r.ReadMessage()
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if m.CSID != w.csid || m.Type != w.typ || m.StreamID != w.sid || m.Timestamp != w.ts || !bytes.Equal(m.Payload, w.data) {
					t.Errorf("message %d: got csid=%d type=%d sid=%d ts=%d len=%d, want csid=%d type=%d sid=%d ts=%d len=%d",
						i, m.CSID, m.Type, m.StreamID, m.Timestamp, len(m.Payload), w.csid, w.typ, w.sid, w.ts, len(w.data))
				}
			}
			if _, err := r.ReadMessage(); err != io.EOF {
				t.Errorf("after the last message: %v, want io.EOF", err)
			}
		})
	}
}

func TestChunkReaderErrors(t *testing.T) {
	cases := map[string][]byte{
		"chunk size zero":          cat(type0(2, 0, 4, MsgSetChunkSize, 0), be32(0)),
		"truncated header":         type0(3, 0, 10, MsgAudio, 1)[:6],
		"truncated message":        cat(type0(3, 0, 10, MsgAudio, 1), []byte("abc")),
		"truncated extended stamp": type0(3, 0x1000000, 1, MsgAudio, 1)[:13],
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			r := NewChunkReader(bytes.NewReader(in))
			_, err := r.ReadMessage()
			if err == nil || err == io.EOF {
				t.Fatalf("got %v, want an error", err)
			}
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("error %v does not wrap ErrProtocol", err)
			}
		})
	}
	t.Run("too many chunk streams", func(t *testing.T) {
		var in []byte
		for cs := uint32(3); cs < 3+maxChunkStreams+1; cs++ {
			in = append(in, type0(cs, 0, 200, MsgAudio, 1)...)
			in = append(in, fill(128, 'x')...) // leave each message unfinished
		}
		r := NewChunkReader(bytes.NewReader(in))
		if _, err := r.ReadMessage(); !errors.Is(err, ErrProtocol) {
			t.Fatalf("got %v, want ErrProtocol", err)
		}
	})
}

// TestChunkWriterReaderRoundTrip writes random messages with ChunkWriter (changing the chunk
// size on the way) and reads them back.
func TestChunkWriterReaderRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	w := NewChunkWriter(&buf)
	var want []Message
	for i := 0; i < 300; i++ {
		if i%50 == 25 {
			size := uint32(1 + rng.IntN(9000))
			m := Message{CSID: 2, Type: MsgSetChunkSize, Payload: be32(size)}
			if err := w.WriteMessage(m); err != nil {
				t.Fatal(err)
			}
			w.SetChunkSize(size)
			want = append(want, m)
		}
		ts := rng.Uint32()
		if i%3 == 0 {
			ts = 0xfffff0 + uint32(i) // around the extended timestamp threshold
		}
		m := Message{CSID: uint32([]int{3, 4, 6, 70, 500}[rng.IntN(5)]), Type: MsgVideo, StreamID: rng.Uint32(), Timestamp: ts,
			Payload: fill(rng.IntN(20000), byte(i))}
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
	}
	r := NewChunkReader(&buf)
	for i, wm := range want {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.CSID != wm.CSID || m.Type != wm.Type || m.StreamID != wm.StreamID || m.Timestamp != wm.Timestamp || !bytes.Equal(m.Payload, wm.Payload) {
			t.Fatalf("message %d differs: got ts=%d len=%d, want ts=%d len=%d", i, m.Timestamp, len(m.Payload), wm.Timestamp, len(wm.Payload))
		}
	}
}

func TestUnwrapper(t *testing.T) {
	var u flv.Unwrapper
	in := []uint32{0xfffffff0, 0xfffffffa, 0x00000005, 0x00000002, 0x00000100}
	want := []int64{0xfffffff0, 0xfffffffa, 0x100000005, 0x100000002, 0x100000100}
	for i, v := range in {
		if got := u.Next(v); got != want[i] {
			t.Errorf("next(%#x) = %#x, want %#x", v, got, want[i])
		}
	}
}

func FuzzChunkReader(f *testing.F) {
	var buf bytes.Buffer
	w := NewChunkWriter(&buf)
	_ = w.WriteMessage(Message{CSID: 3, Type: MsgCommandAMF0, Payload: []byte("connect-ish")})
	_ = w.WriteMessage(Message{CSID: 6, Type: MsgVideo, StreamID: 1, Timestamp: 0x1000000, Payload: fill(400, 'v')})
	f.Add(buf.Bytes())
	f.Add(cat(type0(4, 10, 300, MsgAudio, 1), fill(128, 'a'), type0(6, 20, 200, MsgVideo, 1), fill(128, 'v'), type3(4, 0), fill(128, 'a')))
	f.Add(cat(type0(2, 0, 4, MsgSetChunkSize, 0), be32(1), type0(3, 0, 3, MsgAudio, 1), []byte("a"), type3(3, 0), []byte("b")))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewChunkReader(bytes.NewReader(data))
		b := &countingBudget{t: t, limit: 1 << 20}
		r.SetLimits(ReadLimits{MaxMessage: 64 << 10, MaxBuffered: 256 << 10, Budget: b})
		defer func() {
			// Whatever was read, what is charged is what the reader holds, and Release gives it back.
			if b.used != r.Buffered() || b.used > 256<<10 {
				t.Fatalf("charged %d, reader holds %d", b.used, r.Buffered())
			}
			r.Release()
			if b.used != 0 {
				t.Fatalf("charged %d after Release", b.used)
			}
		}()
		total := 0
		for i := 0; i < 10000; i++ {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			// Every payload byte is read from the input exactly once.
			total += len(m.Payload)
			if total > len(data) {
				t.Fatalf("read %d payload bytes out of %d input bytes", total, len(data))
			}
		}
	})
}

func TestStreamKey(t *testing.T) {
	for _, c := range []struct{ app, name, want string }{
		{"app", "abc", "abc"},
		{"live", "live/abc", "abc"},
		{"app", "abc?x=y", "abc"},
		{"app", "/app/abc?token=1", "abc"},
		{"app/abc/", "", "abc"},
		{"app/abc?token=1", "", "abc"},
		{"app", "", "app"},
	} {
		if got := streamKey(c.app, c.name); got != c.want {
			t.Errorf("streamKey(%q, %q) = %q, want %q", c.app, c.name, got, c.want)
		}
	}
}
