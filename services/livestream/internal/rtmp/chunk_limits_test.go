package rtmp

import (
	"bytes"
	"errors"
	"testing"
)

// countingBudget is a Budget with a limit that checks it is never released more than it gave.
type countingBudget struct {
	t           *testing.T
	limit, used int
}

func (b *countingBudget) Reserve(n int) bool {
	if n <= 0 {
		b.t.Errorf("Reserve(%d)", n)
	}
	if b.limit > 0 && b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

func (b *countingBudget) Release(n int) {
	b.used -= n
	if b.used < 0 {
		b.t.Errorf("released %d more bytes than reserved", -b.used)
	}
}

func TestChunkReaderLimits(t *testing.T) {
	cases := []struct {
		name     string
		in       []byte
		lim      ReadLimits // Budget is set by the test
		budget   int        // the budget's limit, 0 = none
		messages int        // read before the error (or io.EOF)
		wantErr  error      // nil: io.EOF after the messages
		held     int        // bytes charged when the reader stops, before Release
	}{
		{
			name:     "complete messages are handed over, nothing stays charged",
			in:       cat(type0(4, 0, 300, MsgAudio, 1), fill(128, 'a'), type0(6, 0, 200, MsgVideo, 1), fill(128, 'v'), type3(4, 0), fill(128, 'a'), type3(6, 0), fill(72, 'v'), type3(4, 0), fill(44, 'a')),
			lim:      ReadLimits{MaxMessage: 300, MaxBuffered: 500},
			messages: 2,
		},
		{
			name:    "a message announced over MaxMessage fails before buffering",
			in:      cat(type0(3, 0, 1001, MsgVideo, 1), fill(128, 'v')),
			lim:     ReadLimits{MaxMessage: 1000},
			wantErr: ErrMessageTooLarge,
		},
		{
			name: "partial messages of several chunk streams add up to MaxBuffered",
			in: cat(type0(3, 0, 100, MsgVideo, 1), fill(100, 'x'), type0(4, 0, 200, MsgVideo, 1), fill(128, 'x'),
				type0(5, 0, 200, MsgVideo, 1), fill(128, 'x'), type0(6, 0, 200, MsgVideo, 1), fill(128, 'x')),
			lim: ReadLimits{MaxBuffered: 450},
			// csid 3 completes; csids 4 and 5 are charged 200 each (the announced length); csid 6 does not fit
			messages: 1,
			wantErr:  ErrBufferLimit,
			held:     400,
		},
		{
			name:     "the budget refuses",
			in:       cat(type0(3, 0, 200, MsgVideo, 1), fill(128, 'x'), type0(4, 0, 200, MsgVideo, 1), fill(128, 'x')),
			budget:   300,
			wantErr:  ErrMemoryBudget,
			held:     200,
			messages: 0,
		},
		{
			name:     "an aborted message is given back",
			in:       cat(type0(4, 0, 300, MsgAudio, 1), fill(128, 'a'), type0(2, 0, 4, MsgAbort, 0), be32(4)),
			messages: 1,
		},
		{
			name:     "a message given up for a new header is given back",
			in:       cat(type0(4, 0, 300, MsgAudio, 1), fill(128, 'a'), type0(4, 0, 10, MsgAudio, 1), fill(10, 'b')),
			messages: 1,
		},
		{
			name:     "what the connection ends with is charged until Release",
			in:       cat(type0(4, 0, 70000, MsgVideo, 1), fill(128, 'a')),
			messages: 0,
			held:     65536, // the first allocation: 64 KiB of the announced 70000
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := &countingBudget{t: t, limit: tc.budget}
			r := NewChunkReader(bytes.NewReader(tc.in))
			tc.lim.Budget = b
			r.SetLimits(tc.lim)
			var err error
			n := 0
			for ; ; n++ {
				if _, err = r.ReadMessage(); err != nil {
					break
				}
			}
			if n != tc.messages {
				t.Errorf("read %d messages, want %d", n, tc.messages)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if b.used != tc.held || r.Buffered() != tc.held {
				t.Errorf("charged %d (reader says %d), want %d", b.used, r.Buffered(), tc.held)
			}
			r.Release()
			if b.used != 0 || r.Buffered() != 0 {
				t.Errorf("after Release: charged %d (reader says %d)", b.used, r.Buffered())
			}
		})
	}
}

// TestChunkReaderRecycle: a handed-back payload is reused for its chunk stream's next message
// that fits (and charged while in use), never for one that does not fit or for another chunk
// stream, and never shared by two messages the caller still holds.
func TestChunkReaderRecycle(t *testing.T) {
	in := cat(
		type0(6, 0, 100, MsgVideo, 1), fill(100, 'a'), // 1: fresh
		type0(6, 33, 60, MsgVideo, 1), fill(60, 'b'), // 2: in 1's memory
		type0(4, 0, 50, MsgAudio, 1), fill(50, 'c'), // 3: another chunk stream, fresh
		type0(6, 66, 120, MsgVideo, 1), fill(120, 'd'), // 4: larger than the spare, fresh
		type0(6, 99, 80, MsgVideo, 1), fill(80, 'e'), // 5: 2 and 4 are still held: fresh
	)
	b := &countingBudget{t: t, limit: 1000}
	r := NewChunkReader(bytes.NewReader(in))
	r.SetLimits(ReadLimits{MaxBuffered: 1000, Budget: b})
	var got []Message
	for i := range 5 {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		if r.Buffered() != 0 || b.used != 0 {
			t.Fatalf("message %d: %d bytes still charged (budget %d) after it was handed over", i+1, r.Buffered(), b.used)
		}
		got = append(got, m)
		if i == 0 || i == 2 {
			r.Recycle(m) // 1 and 3 are handed back, the others kept
		}
	}
	want := "abcde"
	for i, m := range got[1:] {
		if len(m.Payload) == 0 || !bytes.Equal(m.Payload, fill(len(m.Payload), want[i+1])) {
			t.Fatalf("message %d: payload %q", i+2, m.Payload)
		}
	}
	if !bytes.Equal(got[1].Payload, fill(60, 'b')) {
		t.Fatalf("message 2 was overwritten while held: %q", got[1].Payload)
	}
	same := func(a, b Message) bool { return &a.Payload[:1][0] == &b.Payload[:1][0] }
	if !same(got[0], got[1]) {
		t.Error("message 2 did not reuse message 1's memory")
	}
	if same(got[1], got[2]) || same(got[1], got[3]) || same(got[3], got[4]) || same(got[1], got[4]) {
		t.Error("a buffer was reused across chunk streams, for a message too large, or while still held")
	}
	// A spare that the budget cannot cover is not used: the message is refused as before.
	r2 := NewChunkReader(bytes.NewReader(cat(type0(6, 0, 100, MsgVideo, 1), fill(100, 'a'), type0(6, 33, 60, MsgVideo, 1), fill(60, 'b'))))
	b2 := &countingBudget{t: t, limit: 100}
	r2.SetLimits(ReadLimits{Budget: b2})
	m, err := r2.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	r2.Recycle(m)
	b2.limit = 50
	if _, err := r2.ReadMessage(); !errors.Is(err, ErrMemoryBudget) {
		t.Fatalf("over the budget with a spare: %v, want ErrMemoryBudget", err)
	}
}
