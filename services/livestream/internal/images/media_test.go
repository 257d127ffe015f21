package images

import (
	"errors"
	"testing"
)

const vod = `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXTINF:2.000,
seg-0.ts
#EXTINF:1.500,
seg-1.ts
#EXT-X-DISCONTINUITY
#EXTINF:2.000,
seg-2.ts
#EXT-X-ENDLIST
`

func TestTimeline(t *testing.T) {
	tl, err := parsePlaylist([]byte(vod))
	if err != nil {
		t.Fatal(err)
	}
	if len(tl) != 3 || tl.duration() != 5.5 {
		t.Fatalf("timeline %+v", tl)
	}
	for _, tt := range []struct {
		at   float64
		uri  string
		off  float64
		fail bool
	}{
		{0, "seg-0.ts", 0, false}, {1.9, "seg-0.ts", 1.9, false}, {2, "seg-1.ts", 0, false},
		{3.6, "seg-2.ts", 0.1, false}, {5.5, "", 0, true}, {99, "", 0, true},
	} {
		s, off, err := tl.at(tt.at)
		if tt.fail {
			if !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("at(%g) = %v, want ErrOutOfRange", tt.at, err)
			}
			continue
		}
		if err != nil || s.URI != tt.uri || off < tt.off-1e-9 || off > tt.off+1e-9 {
			t.Fatalf("at(%g) = %s %g %v, want %s %g", tt.at, s.URI, off, err, tt.uri, tt.off)
		}
	}
	span, off, err := tl.span(1, 3)
	if err != nil || len(span) != 2 || span[0].URI != "seg-0.ts" || off != 1 {
		t.Fatalf("span(1,3) = %+v %g %v", span, off, err)
	}
}

func TestPlaylistRefusesPaths(t *testing.T) {
	for _, body := range []string{
		"#EXTINF:2,\n../other/seg-0.ts\n",
		"#EXTINF:2,\n/etc/passwd\n",
		"#EXTINF:2,\nhttp://x/seg.ts\n",
		"#EXT-X-MAP:URI=\"../init.mp4\"\n#EXTINF:2,\nseg.m4s\n",
		"#EXTINF:x,\nseg-0.ts\n",
	} {
		if _, err := parsePlaylist([]byte(body)); err == nil {
			t.Fatalf("parsePlaylist(%q) accepted", body)
		}
	}
	tl, err := parsePlaylist([]byte("#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1,\nseg-0.m4s\n"))
	if err != nil || len(tl) != 1 || tl[0].Init != "init.mp4" {
		t.Fatalf("fMP4 playlist: %+v %v", tl, err)
	}
}
