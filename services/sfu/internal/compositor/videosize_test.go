package compositor

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestVideoSizeFollowsTheLayout (told sizes compared in id order): Options.VideoSize hears each video's shown size when it is
// added and again whenever the layout, the tiles, the speaker, the screenshare or the decoded
// picture's aspect change it, and not otherwise.
func TestVideoSizeFollowsTheLayout(t *testing.T) {
	type told struct {
		id   string
		w, h int
	}
	var got []told
	c := &Compositor{log: slog.New(slog.DiscardHandler), tiles: map[string]*tile{}, layout: LayoutGallery, dirty: true,
		opts: Options{Width: 1280, Height: 720, VideoSize: func(id string, w, h int) { got = append(got, told{id, w, h}) }}}
	dst := newFrame(1280, 720)
	addVideo := func(id string) {
		bw, bh := decodeBox(c.layout, 1280, 720)
		if c.tiles[id] == nil {
			c.tiles[id] = &tile{id: id}
			c.order = append(c.order, id)
		}
		tl := c.tiles[id]
		tl.in, tl.last, tl.told = &input{id: id, boxW: bw, boxH: bh}, nil, [2]int{}
		c.dirty = true
	}
	step := func(what string, want ...told) {
		t.Helper()
		got = nil
		c.compose(dst, time.Now())
		slices.SortFunc(got, func(a, b told) int { return strings.Compare(a.id, b.id) })
		if len(got) != len(want) {
			t.Fatalf("%s: told %v, want %v", what, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: told %v, want %v", what, got, want)
			}
		}
	}
	addVideo("a")
	step("one video", told{"a", 640, 360})
	step("nothing changed")
	addVideo("b")
	step("two side by side", told{"a", 628, 353}, told{"b", 628, 353})
	c.tiles["c"] = &tile{id: "c", name: "no camera"} // a placeholder: no video, nothing told
	c.order = append(c.order, "c")
	c.dirty = true
	step("three tiles in a 2x2 grid", told{"a", 619, 348}, told{"b", 619, 348})
	c.layout, c.dirty = LayoutActiveSpeaker, true
	c.speaker = "b"
	// The decoders keep the gallery's box (640x360): the main area gets no more than that.
	step("active speaker b", told{"a", 242, 136}, told{"b", 640, 360})
	addVideo("a") // a republished camera, now decoded at the active-speaker box
	step("a's new video", told{"a", 242, 136})
	c.speaker, c.dirty = "a", true
	step("a speaks", told{"a", 1024, 576}, told{"b", 242, 136})
	c.tiles["a"].last, c.tiles["a"].lastAt = newFrame(768, 576), time.Now() // a 4:3 camera
	step("a's first picture is 4:3", told{"a", 768, 576})
	c.screen, c.dirty = "b", true
	step("b shares its screen: fitted in the main area", told{"a", 240, 180}, told{"b", 640, 360})
}
