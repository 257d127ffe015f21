package playback

import "testing"

const llPlaylist = `#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.750
#EXT-X-PART-INF:PART-TARGET=0.250
#EXT-X-MEDIA-SEQUENCE:3
#EXT-X-MAP:URI="init-0.mp4"
#EXTINF:1.000,
seg-3.m4s
#EXT-X-PART:DURATION=0.200,URI="seg-4.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.200,URI="seg-4.1.m4s"
#EXTINF:0.400,
seg-4.m4s
#EXT-X-PART:DURATION=0.200,URI="seg-5.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.200,URI="seg-5.1.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg-5.2.m4s"
`

func TestLiveStateHas(t *testing.T) {
	st := parseLive([]byte(llPlaylist))
	if !st.canBlock || st.ended || st.lastSeg != 4 || st.parts[5] != 2 || st.target.Seconds() != 1 {
		t.Fatalf("parsed %+v", st)
	}
	for _, c := range []struct {
		msn, part int
		want      bool
	}{
		{3, -1, true}, {4, -1, true}, {5, -1, false}, // whole segments
		{5, 0, true}, {5, 1, true}, {5, 2, false}, {6, 0, false}, // parts of the open segment
		{4, 1, true}, {4, 2, true}, // segment 4 ended after 2 parts: 5.0 is what comes next
		{3, 7, true}, // an old segment whose parts are no longer listed
		{2, 0, true},
	} {
		if got := st.has(c.msn, c.part); got != c.want {
			t.Errorf("has(%d, %d) = %v, want %v", c.msn, c.part, got, c.want)
		}
	}
	// A segment that ended with fewer parts than asked for, before the next one has a part.
	st2 := parseLive([]byte(llPlaylist[:len(llPlaylist)-len("#EXT-X-PART:DURATION=0.200,URI=\"seg-5.0.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.200,URI=\"seg-5.1.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg-5.2.m4s\"\n")]))
	if st2.parts[5] != 0 || st2.has(4, 2) {
		t.Fatalf("has(4, 2) before part 5.0 exists: %+v", st2)
	}
}
