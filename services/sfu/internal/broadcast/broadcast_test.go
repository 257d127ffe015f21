package broadcast

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/spacecast/spacecast/services/sfu/internal/compositor"
	"github.com/spacecast/spacecast/services/sfu/internal/space"
)

// fakeComp records the calls a broadcaster makes.
type fakeComp struct {
	mu     sync.Mutex
	calls  []string
	pkts   map[string]int
	done   chan struct{}
	closed bool
}

type fakeIn struct {
	f  *fakeComp
	id string
}

func (w fakeIn) WriteRTP(*rtp.Packet) error {
	w.f.mu.Lock()
	w.f.pkts[w.id]++
	w.f.mu.Unlock()
	return nil
}

func (f *fakeComp) rec(s string, a ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(s, a...))
	f.mu.Unlock()
}
func (f *fakeComp) AddVideo(id, name, codec string) (compositor.RTPWriter, error) {
	f.rec("video %s %s %s", id, name, codec)
	return fakeIn{f, id}, nil
}
func (f *fakeComp) AddTile(id, name string) error { f.rec("tile %s %s", id, name); return nil }
func (f *fakeComp) AddAudio(id string) (compositor.RTPWriter, error) {
	f.rec("audio %s", id)
	return fakeIn{f, id}, nil
}
func (f *fakeComp) RemoveVideo(id string) error      { f.rec("removevideo %s", id); return nil }
func (f *fakeComp) Remove(id string) error           { f.rec("remove %s", id); return nil }
func (f *fakeComp) SetMuted(id string, m bool) error { f.rec("muted %s %v", id, m); return nil }
func (f *fakeComp) SetActiveSpeaker(id string) error { f.rec("speaker %s", id); return nil }
func (f *fakeComp) SetScreenshare(id string) error   { f.rec("screen %s", id); return nil }
func (f *fakeComp) Done() <-chan struct{}            { return f.done }
func (f *fakeComp) Close() error                     { f.rec("close"); return nil }

func (f *fakeComp) waitCalls(t *testing.T, want []string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		f.mu.Lock()
		got := slices.Clone(f.calls)
		f.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls:\n got %q\nwant %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tt(tid string, kind int, source string, muted bool) space.Track {
	return space.Track{TID: tid, Type: kind, Source: source, Muted: muted}
}

func TestBroadcasterFollowsTheSpace(t *testing.T) {
	steps := []struct {
		name string
		do   func(b *Broadcaster) space.TapSink
		want []string
	}{
		{"camera", func(b *Broadcaster) space.TapSink {
			return b.TrackAdded(space.TapTrack{ConnectionID: "c1", DisplayName: "Ann", Track: tt("v1", space.KindVideo, "camera", false), MimeType: "video/VP8"})
		}, []string{"video c1 Ann video/VP8"}},
		{"mic of the same participant", func(b *Broadcaster) space.TapSink {
			return b.TrackAdded(space.TapTrack{ConnectionID: "c1", DisplayName: "Ann", Track: tt("a1", space.KindAudio, "microphone", false), MimeType: "audio/opus"})
		}, []string{"audio a1"}},
		{"audio-only participant gets a placeholder", func(b *Broadcaster) space.TapSink {
			return b.TrackAdded(space.TapTrack{ConnectionID: "c2", DisplayName: "Bob", Track: tt("a2", space.KindAudio, "microphone", false), MimeType: "audio/opus"})
		}, []string{"tile c2 Bob", "audio a2"}},
		{"muted camera arrives", func(b *Broadcaster) space.TapSink {
			return b.TrackAdded(space.TapTrack{ConnectionID: "c2", DisplayName: "Bob", Track: tt("v2", space.KindVideo, "camera", true), MimeType: "video/H264"})
		}, []string{"video c2 Bob video/H264", "muted c2 true"}},
		{"unmute", func(b *Broadcaster) space.TapSink { b.TrackMuted("c2", "v2", false); return nil }, []string{"muted c2 false"}},
		{"speaker", func(b *Broadcaster) space.TapSink { b.ActiveSpeaker("c2"); return nil }, []string{"speaker c2"}},
		{"unknown speaker ignored", func(b *Broadcaster) space.TapSink { b.ActiveSpeaker("zz"); return nil }, nil},
		{"screenshare", func(b *Broadcaster) space.TapSink {
			return b.TrackAdded(space.TapTrack{ConnectionID: "c1", Track: tt("s1", space.KindVideo, "screenshare", false), MimeType: "video/VP8"})
		}, []string{"video c1/screenshare Ann video/VP8", "screen c1/screenshare"}},
		{"screenshare ends", func(b *Broadcaster) space.TapSink { b.TrackRemoved("c1", "s1"); return nil },
			[]string{"remove c1/screenshare", "screen "}},
		{"camera unpublished keeps the tile", func(b *Broadcaster) space.TapSink { b.TrackRemoved("c1", "v1"); return nil },
			[]string{"removevideo c1"}},
		{"leave", func(b *Broadcaster) space.TapSink {
			b.TrackRemoved("c2", "v2")
			b.TrackRemoved("c2", "a2")
			b.ParticipantLeft("c2")
			return nil
		}, []string{"removevideo c2", "remove a2", "remove c2"}},
	}
	f := &fakeComp{pkts: map[string]int{}, done: make(chan struct{})}
	b, err := New("b1", f, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, st := range steps {
		sk := st.do(b)
		want = append(want, st.want...)
		f.waitCalls(t, want)
		if sk != nil {
			if err := sk.WriteRTP(&rtp.Packet{}); err != nil {
				t.Fatalf("%s: write: %v", st.name, err)
			}
		}
	}
	f.mu.Lock()
	if f.pkts["c1"] != 1 || f.pkts["a2"] != 1 || f.pkts["c1/screenshare"] != 1 {
		t.Errorf("packets reached the inputs: %v", f.pkts)
	}
	f.mu.Unlock()
	b.Stop()
	f.waitCalls(t, append(want, "close"))
}

func TestBroadcasterStopsWhenTheCompositorEnds(t *testing.T) {
	f := &fakeComp{pkts: map[string]int{}, done: make(chan struct{})}
	b, err := New("b1", f, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	close(f.done)
	select {
	case <-b.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("broadcaster still running after its compositor ended")
	}
}

func TestParseResolution(t *testing.T) {
	for _, c := range []struct {
		in   string
		w, h int
		ok   bool
	}{{"1280x720", 1280, 720, true}, {"720x1280", 720, 1280, true}, {"1280", 0, 0, false}, {"ax720", 0, 0, false}, {"0x720", 0, 0, false}} {
		w, h, err := ParseResolution(c.in)
		if (err == nil) != c.ok || w != c.w || h != c.h {
			t.Errorf("ParseResolution(%q) = %d, %d, %v", c.in, w, h, err)
		}
	}
}

// TestBroadcasterRequestsKeyframes: a decoder's keyframe request for a tile reaches the
// space's Keyframe of the track shown there (a camera by connection id, a screenshare by its
// own id), and stops once the track or its participant went.
func TestBroadcasterRequestsKeyframes(t *testing.T) {
	f := &fakeComp{pkts: map[string]int{}, done: make(chan struct{})}
	b, err := New("b1", f, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	var mu sync.Mutex
	asked := map[string]int{}
	kf := func(tid string) func() {
		return func() { mu.Lock(); asked[tid]++; mu.Unlock() }
	}
	b.TrackAdded(space.TapTrack{ConnectionID: "c1", Track: tt("cam1", space.KindVideo, "camera", false), MimeType: "video/VP8", Keyframe: kf("cam1")})
	b.TrackAdded(space.TapTrack{ConnectionID: "c1", Track: tt("scr1", space.KindVideo, "screenshare", false), MimeType: "video/VP8", Keyframe: kf("scr1")})
	b.TrackAdded(space.TapTrack{ConnectionID: "c2", Track: tt("cam2", space.KindVideo, "camera", false), MimeType: "video/VP8", Keyframe: kf("cam2")})
	f.waitCalls(t, []string{"video c1  video/VP8", "video c1/screenshare  video/VP8", "screen c1/screenshare", "video c2  video/VP8"})
	count := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(asked)
	}
	for _, id := range []string{"c1", "c1/screenshare", "c2", "c2", "nobody"} {
		b.RequestKeyframe(id)
	}
	if got := count(); !maps.Equal(got, map[string]int{"cam1": 1, "scr1": 1, "cam2": 2}) {
		t.Fatalf("keyframe requests %v", got)
	}
	b.TrackRemoved("c1", "scr1")
	b.ParticipantLeft("c2")
	f.waitCalls(t, []string{"video c1  video/VP8", "video c1/screenshare  video/VP8", "screen c1/screenshare", "video c2  video/VP8",
		"remove c1/screenshare", "screen ", "remove c2"})
	for _, id := range []string{"c1", "c1/screenshare", "c2"} {
		b.RequestKeyframe(id)
	}
	if got := count(); !maps.Equal(got, map[string]int{"cam1": 2, "scr1": 1, "cam2": 2}) {
		t.Fatalf("keyframe requests after the screenshare and c2 went: %v", got)
	}
}

// TestBroadcasterTellsTileSizes: the compositor's VideoSize for a tile reaches the View of the
// simulcast track shown there, and stops once the track or its participant went.
func TestBroadcasterTellsTileSizes(t *testing.T) {
	f := &fakeComp{pkts: map[string]int{}, done: make(chan struct{})}
	b, err := New("b1", f, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	var mu sync.Mutex
	views := map[string][2]int{}
	view := func(tid string) func(int, int) {
		return func(w, h int) { mu.Lock(); views[tid] = [2]int{w, h}; mu.Unlock() }
	}
	got := func() map[string][2]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(views)
	}
	b.TrackAdded(space.TapTrack{ConnectionID: "c1", Track: tt("cam1", space.KindVideo, "camera", false), MimeType: "video/VP8", View: view("cam1")})
	b.TrackAdded(space.TapTrack{ConnectionID: "c2", Track: tt("cam2", space.KindVideo, "camera", false), MimeType: "video/VP8", View: view("cam2")})
	b.TrackAdded(space.TapTrack{ConnectionID: "c2", Track: tt("scr2", space.KindVideo, "screenshare", false), MimeType: "video/VP8"})
	f.waitCalls(t, []string{"video c1  video/VP8", "video c2  video/VP8", "video c2/screenshare  video/VP8", "screen c2/screenshare"})
	b.VideoSize("c1", 628, 353)
	b.VideoSize("c2", 240, 136)
	b.VideoSize("c2/screenshare", 640, 360) // not simulcast: no View
	b.VideoSize("nobody", 1, 1)
	if g := got(); !maps.Equal(g, map[string][2]int{"cam1": {628, 353}, "cam2": {240, 136}}) {
		t.Fatalf("views %v", g)
	}
	b.TrackRemoved("c1", "cam1")
	b.ParticipantLeft("c2")
	f.waitCalls(t, []string{"video c1  video/VP8", "video c2  video/VP8", "video c2/screenshare  video/VP8", "screen c2/screenshare",
		"removevideo c1", "remove c2/screenshare", "screen ", "remove c2"})
	b.VideoSize("c1", 1, 1)
	b.VideoSize("c2", 1, 1)
	if g := got(); !maps.Equal(g, map[string][2]int{"cam1": {628, 353}, "cam2": {240, 136}}) {
		t.Fatalf("views after the camera and c2 went: %v", g)
	}
}
