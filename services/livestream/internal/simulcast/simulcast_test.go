package simulcast

import (
	"log/slog"
	"testing"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
)

func videoTag(ts int64, key, seqHeader bool) flv.Tag {
	ft, pt := byte(2), byte(1)
	if key {
		ft = 1
	}
	if seqHeader {
		ft, pt = 1, 0
	}
	return flv.Tag{Type: flv.TagVideo, Timestamp: ts, Data: []byte{ft<<4 | 7, pt, 0, 0, 0, 0xaa}}
}

func audioTag(ts int64, seqHeader bool) flv.Tag {
	pt := byte(1)
	if seqHeader {
		pt = 0
	}
	return flv.Tag{Type: flv.TagAudio, Timestamp: ts, Data: []byte{0xaf, pt, 0x12, 0x10}}
}

// A pusher that does not keep up never blocks WriteTag: its queue fills, the rest is dropped
// until the next keyframe, which it gets after the metadata and sequence headers.
func TestSlowTargetDropsAndResyncsAtKeyframe(t *testing.T) {
	p := &pusher{q: make(chan flv.Tag, 8), log: slog.New(slog.DiscardHandler)}
	f := &Fanout{pushers: []*pusher{p}} // no goroutine: nobody drains the queue
	f.WriteTag(flv.Tag{Type: flv.TagScript, Data: []byte{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a'}})
	f.WriteTag(videoTag(0, false, true))
	f.WriteTag(audioTag(0, true))
	f.WriteTag(videoTag(0, true, false))
	for ts := int64(40); ts < 2000; ts += 40 { // far more than the queue holds
		f.WriteTag(videoTag(ts, false, false))
		f.WriteTag(audioTag(ts, false))
	}
	if len(p.q) != cap(p.q) || !p.behind {
		t.Fatalf("queue %d/%d behind=%v, want full and behind", len(p.q), cap(p.q), p.behind)
	}
	for len(p.q) > 0 { // the target catches up
		<-p.q
	}
	f.WriteTag(videoTag(2000, false, false)) // not a keyframe: still dropped
	f.WriteTag(audioTag(2000, false))
	if len(p.q) != 0 {
		t.Fatalf("%d tags queued before a keyframe", len(p.q))
	}
	f.WriteTag(videoTag(2040, true, false))
	var got []flv.Tag
	for len(p.q) > 0 {
		got = append(got, <-p.q)
	}
	if len(got) != 4 || got[0].Type != flv.TagScript || got[1].Data[1] != 0 || got[1].Type != flv.TagVideo ||
		got[2].Type != flv.TagAudio || got[2].Data[1] != 0 || got[3].Data[0]>>4 != 1 || got[3].Data[1] != 1 {
		t.Fatalf("resync queued %+v, want metadata, video and audio sequence headers, then the keyframe", got)
	}
	for _, g := range got {
		if g.Timestamp != 2040 {
			t.Fatalf("resync tag at %d ms, want the keyframe's 2040", g.Timestamp)
		}
	}
	if p.behind {
		t.Fatal("still behind after the resync")
	}
}

// A nil Fanout (a stream without targets) takes tags and stops.
func TestNilFanout(t *testing.T) {
	f := Start(Options{Logger: slog.New(slog.DiscardHandler)}, "ls", nil)
	if f != nil {
		t.Fatal("a fanout without targets")
	}
	f.WriteTag(videoTag(0, true, false))
	f.Stop()
}
