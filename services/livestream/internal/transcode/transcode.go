// Package transcode makes a live stream's adaptive ladder: one ffmpeg process per connection
// reads the source as FLV on its stdin, decodes it once and encodes each rung (H.264,
// keyframes where the source has them, audio copied) into HLS in a directory of its own under
// the recording (<recording>/<rung>/index.m3u8, seg-N.ts). A reconnect appends to the same
// playlists after a discontinuity; the recording's end closes them (EndRungs).
package transcode

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
)

// Tiers are the accepted max_resolution_tier values and the height each allows.
var Tiers = map[string]int{"1080p": 1080, "1440p": 1440, "2160p": 2160}

// DefaultTier applies when a live stream sets no max_resolution_tier (Mux's default).
const DefaultTier = "1080p"

// Rung is one transcoded rendition.
type Rung struct {
	Name         string `json:"name"` // "720p": its directory and playlist name
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	VideoBitrate int    `json:"video_bitrate"` // bit/s
}

// candidates are the rungs a ladder is made of, highest first.
var candidates = []struct {
	height, bitrate int
}{{1080, 5_000_000}, {720, 2_500_000}, {480, 1_000_000}, {360, 600_000}}

// Plan is the ladder of a source of width × height under tier: the candidate rungs below the
// source height and at most the tier's height, and whether the source itself is listed (only
// when it is within the tier).
func Plan(width, height int, tier string) (rungs []Rung, keepSource bool) {
	maxH, ok := Tiers[tier]
	if !ok {
		maxH = Tiers[DefaultTier]
	}
	if width <= 0 || height <= 0 {
		return nil, true
	}
	for _, c := range candidates {
		if c.height >= height || c.height > maxH {
			continue
		}
		w := (width*c.height/height + 1) &^ 1
		rungs = append(rungs, Rung{Name: strconv.Itoa(c.height) + "p", Width: w, Height: c.height, VideoBitrate: c.bitrate})
	}
	return rungs, height <= maxH || len(rungs) == 0
}

// Playlist is the media playlist file of a rung, in its directory.
const Playlist = "index.m3u8"

// LadderFile lists a recording's rungs (JSON Ladder), written when the transcoder starts.
const LadderFile = "ladder.json"

// Ladder is what LadderFile holds.
type Ladder struct {
	Rungs      []Rung `json:"rungs"`
	KeepSource bool   `json:"keep_source"`
}

// ReadLadder reads a recording's LadderFile; a recording without one has no ladder.
func ReadLadder(dir string) (Ladder, error) {
	var l Ladder
	b, err := os.ReadFile(filepath.Join(dir, LadderFile))
	if errors.Is(err, os.ErrNotExist) {
		return Ladder{KeepSource: true}, nil
	}
	if err != nil {
		return l, err
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return l, fmt.Errorf("transcode: %s: %w", LadderFile, err)
	}
	return l, nil
}

// Options configure a Process.
type Options struct {
	FFmpeg          string // path of ffmpeg (default "ffmpeg")
	Dir             string // the recording directory
	Ladder          Ladder
	SegmentDuration time.Duration
	Logger          *slog.Logger
	// Queue is how many FLV tags may wait for ffmpeg (default 1500, about 25 s of 30 fps
	// video and audio); when it is full, tags are dropped until the next video keyframe.
	Queue int
}

// Process is one running ffmpeg. WriteTag and Close may be called from one goroutine (the
// connection's); the writer goroutine owns ffmpeg's stdin.
type Process struct {
	o       Options
	log     *slog.Logger
	cmd     *exec.Cmd
	tags    chan flv.Tag
	dropped bool // waiting for a keyframe after the queue was full
	wrote   chan struct{}
	exited  chan struct{}
	waitErr error
	stderr  *tailBuffer
	once    sync.Once
}

// args is ffmpeg's command line: FLV in, one HLS output per rung.
func args(o Options) []string {
	a := []string{"-hide_banner", "-loglevel", "error", "-f", "flv", "-i", "pipe:0"}
	n := len(o.Ladder.Rungs)
	var fc strings.Builder
	fc.WriteString("[0:v]split=" + strconv.Itoa(n))
	for i := range n {
		fc.WriteString("[s" + strconv.Itoa(i) + "]")
	}
	for i, r := range o.Ladder.Rungs {
		fmt.Fprintf(&fc, ";[s%d]scale=%d:%d[o%d]", i, r.Width, r.Height, i)
	}
	a = append(a, "-filter_complex", fc.String())
	secs := strconv.FormatFloat(o.SegmentDuration.Seconds(), 'f', 3, 64)
	for i, r := range o.Ladder.Rungs {
		dir := filepath.Join(o.Dir, r.Name)
		b := strconv.Itoa(r.VideoBitrate)
		a = append(a, "-map", "[o"+strconv.Itoa(i)+"]", "-map", "0:a?",
			"-c:v", "libx264", "-preset", "superfast", "-tune", "zerolatency", "-profile:v", "main", "-pix_fmt", "yuv420p",
			"-b:v", b, "-maxrate", b, "-bufsize", strconv.Itoa(2*r.VideoBitrate),
			// keyframes exactly where the source has them: the rungs' segments line up with it
			"-force_key_frames", "source", "-g", "100000", "-sc_threshold", "0",
			"-c:a", "copy",
			"-f", "hls", "-hls_time", secs, "-hls_list_size", "0", "-hls_playlist_type", "event",
			"-hls_flags", "append_list+discont_start+omit_endlist+temp_file",
			"-hls_segment_filename", filepath.Join(dir, "seg-%d.ts"), filepath.Join(dir, Playlist))
	}
	return a
}

// Start writes LadderFile and starts ffmpeg. Nothing is started for an empty ladder.
func Start(o Options) (*Process, error) {
	if len(o.Ladder.Rungs) == 0 {
		return nil, errors.New("transcode: empty ladder")
	}
	if o.Dir == "" || o.Logger == nil || o.SegmentDuration <= 0 {
		return nil, errors.New("transcode: Dir, Logger and SegmentDuration are required")
	}
	if o.FFmpeg == "" {
		o.FFmpeg = "ffmpeg"
	}
	if o.Queue <= 0 {
		o.Queue = 1500
	}
	for _, r := range o.Ladder.Rungs {
		if err := os.MkdirAll(filepath.Join(o.Dir, r.Name), 0o755); err != nil {
			return nil, fmt.Errorf("transcode: %w", err)
		}
	}
	lb, err := json.Marshal(o.Ladder)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Dir, LadderFile), lb, 0o644); err != nil {
		return nil, fmt.Errorf("transcode: %w", err)
	}
	cmd := exec.Command(o.FFmpeg, args(o)...)
	// ffmpeg dies with the service: no orphan encoders after a crash.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	p := &Process{o: o, log: o.Logger, cmd: cmd, tags: make(chan flv.Tag, o.Queue), wrote: make(chan struct{}),
		exited: make(chan struct{}), stderr: &tailBuffer{max: 4096}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("transcode: starting ffmpeg: %w", err)
	}
	go p.write(stdin)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *Process) write(stdin io.WriteCloser) {
	defer close(p.wrote)
	defer stdin.Close()
	w := bufio.NewWriterSize(stdin, 64<<10)
	failed := false
	if err := flv.WriteHeader(w, flv.Header{HasAudio: true, HasVideo: true}); err != nil {
		failed = true
	}
	for t := range p.tags {
		if failed {
			continue // drain: ffmpeg is gone
		}
		err := flv.WriteTag(w, t)
		if err == nil && len(p.tags) == 0 {
			err = w.Flush()
		}
		if err != nil {
			p.log.Warn("transcoder input closed", "err", err, "ffmpeg", p.stderr.String())
			failed = true
		}
	}
	if !failed {
		_ = w.Flush()
	}
}

// WriteTag queues a tag for ffmpeg without blocking: when ffmpeg falls behind by more than
// the queue, tags are dropped up to the next video keyframe (the rungs skip, the source does
// not).
func (p *Process) WriteTag(t flv.Tag) {
	if p.dropped {
		if !isKeyframe(t) {
			return
		}
		p.dropped = false
	}
	select {
	case p.tags <- t:
	default:
		p.dropped = true
		p.log.Warn("transcoder is behind: dropping media up to the next keyframe")
	}
}

func isKeyframe(t flv.Tag) bool {
	if t.Type != flv.TagVideo {
		return false
	}
	h, err := flv.ParseVideoHeader(t.Data)
	return err == nil && h.FrameType == flv.FrameKey
}

// Close ends ffmpeg's input and waits (up to timeout) for it to write its last segments; then
// it is killed.
func (p *Process) Close(timeout time.Duration) error {
	var err error
	p.once.Do(func() {
		close(p.tags)
		select {
		case <-p.exited:
		case <-time.After(timeout):
			_ = p.cmd.Process.Kill()
			<-p.exited
			err = errors.New("transcode: ffmpeg did not finish in time: killed")
		}
		if err == nil && p.waitErr != nil {
			err = fmt.Errorf("transcode: ffmpeg: %v: %s", p.waitErr, p.stderr.String())
		}
		<-p.wrote
	})
	return err
}

// EndRungs closes the playlists of a recording's rungs (EXT-X-ENDLIST), once.
func EndRungs(dir string) error {
	l, err := ReadLadder(dir)
	if err != nil {
		return err
	}
	for _, r := range l.Rungs {
		path := filepath.Join(dir, r.Name, Playlist)
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("transcode: %w", err)
		}
		if bytes.Contains(b, []byte("#EXT-X-ENDLIST")) {
			continue
		}
		b = append(bytes.TrimRight(b, "\n"), "\n#EXT-X-ENDLIST\n"...)
		tmp := path + ".end"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return fmt.Errorf("transcode: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("transcode: %w", err)
		}
	}
	return nil
}

// tailBuffer keeps the last max bytes written (ffmpeg's stderr, for errors).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
