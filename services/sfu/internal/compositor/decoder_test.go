package compositor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/spacecast/spacecast/services/sfu/internal/compositor/synthsrc"
)

// joined renumbers the packets of consecutive sends into one stream, as the SFU's tap
// forwards a simulcast camera across a layer switch: sequence numbers go on by one, and the
// timestamps of a new part start a frame after the last one.
type joined struct {
	mu      sync.Mutex
	w       RTPWriter
	seq     uint16
	lastTS  uint32
	tsOff   uint32
	fresh   bool
	started bool
}

func (j *joined) nextPart() {
	j.mu.Lock()
	j.fresh = true
	j.mu.Unlock()
}

func (j *joined) WriteRTP(p *rtp.Packet) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fresh {
		j.tsOff = j.lastTS + 3000 - p.Timestamp
		if !j.started {
			j.tsOff = 0
		}
		j.fresh = false
	}
	q := *p
	q.SequenceNumber, q.Timestamp = j.seq, p.Timestamp+j.tsOff
	j.seq++
	j.lastTS, j.started = q.Timestamp, true
	return j.w.WriteRTP(&q)
}

// TestDecoderTakesALayerSwitch: one video decoder fed one RTP stream whose resolution
// changes at a keyframe, 320x180 → 640x360 → 320x180 (the tap switching a camera from layer q
// to h and back), goes on decoding through both changes, every picture at its box size and
// in the colour of its part: no garbage picture, no stop.
func TestDecoderTakesALayerSwitch(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ffmpeg not installed (required in CI)")
		}
		t.Skip("ffmpeg not installed")
	}
	type part struct {
		colour  string
		size    string
		seconds int
		y       int // the colour's luma (BT.601, limited range)
	}
	parts := []part{{"red", "320x180", 2, 81}, {"blue", "640x360", 1, 41}, {"white", "320x180", 1, 235}}
	for _, tc := range []struct {
		name string
		kind codecKind
		enc  func(ffmpeg, dir, name, source string, seconds int, bitrate string) (string, error)
		send func(ctx context.Context, path string, fps int, w synthsrc.Writer) error
	}{
		{"VP8", codecVP8, synthsrc.VP8, synthsrc.SendVP8},
		{"H264", codecH264, synthsrc.H264, synthsrc.SendH264},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var files []string
			for i, p := range parts {
				f, err := tc.enc("ffmpeg", dir, fmt.Sprint(i), "color=c="+p.colour+":s="+p.size+":r=30", p.seconds, "300k")
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
			}
			out := make(chan videoFrameMsg, 256)
			in, err := startVideo("ffmpeg", "cam", tc.kind, 640, 360, out, func(string) {}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer in.stop()
			j := &joined{w: in}
			go func() {
				for i, p := range parts {
					j.nextPart()
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(p.seconds)*time.Second)
					_ = tc.send(ctx, files[i], 30, j)
					cancel()
				}
			}()
			var runs []string // colours in the order shown, one entry per run of pictures
			deadline := time.After(6 * time.Second)
			for len(runs) < len(parts) || runs[len(runs)-1] != parts[len(parts)-1].colour {
				select {
				case m := <-out:
					if m.f.W != 640 || m.f.H != 360 {
						t.Fatalf("a %dx%d picture, want the box's 640x360", m.f.W, m.f.H)
					}
					y, _, _ := m.f.planes()
					luma, colour := int(y[180*640+320]), ""
					for _, p := range parts {
						if luma >= p.y-12 && luma <= p.y+12 {
							colour = p.colour
						}
					}
					if colour == "" {
						t.Fatalf("a picture of luma %d after %v: not one of the parts'", luma, runs)
					}
					if len(runs) == 0 || runs[len(runs)-1] != colour {
						runs = append(runs, colour)
					}
				case <-deadline:
					t.Fatalf("pictures in colours %v, then none (ffmpeg: %s)", runs, in.proc.stderr.String())
				}
			}
			if fmt.Sprint(runs) != "[red blue white]" {
				t.Fatalf("pictures in colours %v, want red, blue, white", runs)
			}
		})
	}
}
