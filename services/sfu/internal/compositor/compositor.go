package compositor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Compositor composes video tracks into one picture and mixes audio tracks, encoding both
// to one RTMP output that runs from New until Close (or until the encoder fails: Done, Err).
// All methods are safe for concurrent use; one goroutine owns the state and runs them as
// commands.
type Compositor struct {
	opts Options
	log  *slog.Logger
	enc  *encoder

	cmds      chan func()
	frames    chan videoFrameMsg
	pcm       chan pcmMsg
	done      chan struct{}
	err       error // set before done closes
	closeOnce sync.Once
	closeReq  chan struct{}

	// owned by the run goroutine
	tiles   map[string]*tile
	order   []string
	audio   map[string]*audioTrack
	layout  Layout
	speaker string
	screen  string
	bg      *frame
	places  []placement
	dirty   bool
	sc      scaler
	stops   sync.WaitGroup // inputs being stopped in the background
	stats   Stats
}

type tile struct {
	id, name string
	in       *input // nil: no video (placeholder)
	last     *frame
	lastAt   time.Time
	muted    bool
	added    time.Time // when its video was added
	shown    bool      // a picture of the current video has arrived
	told     [2]int    // the size last given to Options.VideoSize for the current video
}

type audioTrack struct {
	in  *input
	buf audioBuf
}

// Stats are counters for monitoring and the benchmark.
type Stats struct {
	FramesOut     int64 // pictures written to the encoder
	FramesSkipped int64 // pictures not written because the encoder was more than 2 s behind
	AudioChunks   int64 // 20 ms PCM chunks written
	Tiles         int
	AudioTracks   int
	PIDs          []int // the encoder's and every decoder's process id
}

// staleAfter: a video that sent no frame for this long shows the placeholder.
const staleAfter = 2 * time.Second

// New validates o, starts the encoder publishing to o.RTMPURL and the composition loop.
// The picture starts as the background (no tiles) with silence.
func New(o Options) (*Compositor, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	c := &Compositor{
		opts: o, log: o.Logger,
		cmds: make(chan func()), frames: make(chan videoFrameMsg, 16), pcm: make(chan pcmMsg, 64),
		done: make(chan struct{}), closeReq: make(chan struct{}),
		tiles: map[string]*tile{}, audio: map[string]*audioTrack{}, layout: o.Layout, dirty: true,
	}
	if o.Background != nil {
		bg, err := decodeBackground(&o, o.Background)
		if err != nil {
			return nil, err
		}
		c.bg = bg
	}
	enc, err := startEncoder(&c.opts)
	if err != nil {
		return nil, err
	}
	c.enc = enc
	go c.run()
	return c, nil
}

// do runs fn on the owner goroutine and returns its error.
func (c *Compositor) do(fn func() error) error {
	reply := make(chan error, 1)
	select {
	case c.cmds <- func() { reply <- fn() }:
		return <-reply
	case <-c.done:
		return ErrClosed
	}
}

func checkID(id string) error {
	if strings.TrimSpace(id) == "" {
		return ErrBadID
	}
	return nil
}

// AddVideo adds a video track (codec "VP8" or "H264", also as "video/VP8" MIME types) as a
// tile labelled displayName, or gives video to the placeholder tile AddTile made for id.
// Packets written to the returned writer are decoded at about tile size.
func (c *Compositor) AddVideo(id, displayName, codec string) (RTPWriter, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	kind, err := parseCodec(codec)
	if err != nil {
		return nil, err
	}
	var w RTPWriter
	err = c.do(func() error {
		t := c.tiles[id]
		if t != nil && t.in != nil {
			return fmt.Errorf("%w: video %q", ErrDuplicateID, id)
		}
		bw, bh := decodeBox(c.layout, c.opts.Width, c.opts.Height)
		in, err := startVideo(c.opts.FFmpeg, id, kind, bw, bh, c.frames, c.opts.RequestKeyframe, c.log)
		if err != nil {
			return err
		}
		if t == nil {
			t = &tile{id: id}
			c.tiles[id] = t
			c.order = append(c.order, id)
			c.dirty = true
		}
		if displayName != "" || t.name == "" {
			t.name = displayName
		}
		t.in, t.last, t.added, t.shown, t.told = in, nil, time.Now(), false, [2]int{}
		w = in
		return nil
	})
	return w, err
}

// AddTile adds a tile with no video: the placeholder with displayName (a participant whose
// camera is off). AddVideo(id, …) later gives it video in the same place.
func (c *Compositor) AddTile(id, displayName string) error {
	if err := checkID(id); err != nil {
		return err
	}
	return c.do(func() error {
		if c.tiles[id] != nil {
			return fmt.Errorf("%w: tile %q", ErrDuplicateID, id)
		}
		c.tiles[id] = &tile{id: id, name: displayName}
		c.order = append(c.order, id)
		c.dirty = true
		return nil
	})
}

// AddAudio adds an Opus track to the mix.
func (c *Compositor) AddAudio(id string) (RTPWriter, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var w RTPWriter
	err := c.do(func() error {
		if c.audio[id] != nil {
			return fmt.Errorf("%w: audio %q", ErrDuplicateID, id)
		}
		in, err := startAudio(c.opts.FFmpeg, id, c.pcm, c.log)
		if err != nil {
			return err
		}
		c.audio[id] = &audioTrack{in: in}
		w = in
		return nil
	})
	return w, err
}

// RemoveVideo stops id's video but keeps its tile, showing the placeholder (camera
// unpublished while the participant stays).
func (c *Compositor) RemoveVideo(id string) error {
	return c.do(func() error {
		t := c.tiles[id]
		if t == nil || t.in == nil {
			return fmt.Errorf("%w: video %q", ErrUnknownID, id)
		}
		c.stopInput(t.in)
		t.in, t.last = nil, nil
		return nil
	})
}

// Remove drops id's tile and audio (the participant left). The output goes on.
func (c *Compositor) Remove(id string) error {
	return c.do(func() error {
		t, a := c.tiles[id], c.audio[id]
		if t == nil && a == nil {
			return fmt.Errorf("%w: %q", ErrUnknownID, id)
		}
		if t != nil {
			if t.in != nil {
				c.stopInput(t.in)
			}
			delete(c.tiles, id)
			c.order = slices.DeleteFunc(c.order, func(x string) bool { return x == id })
			if c.speaker == id {
				c.speaker = ""
			}
			if c.screen == id {
				c.screen = ""
			}
			c.dirty = true
		}
		if a != nil {
			c.stopInput(a.in)
			delete(c.audio, id)
		}
		return nil
	})
}

// SetMuted shows id's tile as the placeholder (true) or its video again (false).
func (c *Compositor) SetMuted(id string, muted bool) error {
	return c.do(func() error {
		t := c.tiles[id]
		if t == nil {
			return fmt.Errorf("%w: tile %q", ErrUnknownID, id)
		}
		t.muted = muted
		return nil
	})
}

// SetActiveSpeaker names the tile shown large in the active-speaker layout ("" = the
// first tile).
func (c *Compositor) SetActiveSpeaker(id string) error {
	return c.do(func() error {
		if id != "" && c.tiles[id] == nil {
			return fmt.Errorf("%w: tile %q", ErrUnknownID, id)
		}
		c.speaker, c.dirty = id, true
		return nil
	})
}

// SetScreenshare names the tile that takes the main area in every layout ("" = none).
func (c *Compositor) SetScreenshare(id string) error {
	return c.do(func() error {
		if id != "" && c.tiles[id] == nil {
			return fmt.Errorf("%w: tile %q", ErrUnknownID, id)
		}
		c.screen, c.dirty = id, true
		return nil
	})
}

// SetLayout switches the layout without restarting anything.
func (c *Compositor) SetLayout(l Layout) error {
	l, err := ParseLayout(string(l))
	if err != nil {
		return err
	}
	return c.do(func() error {
		c.layout, c.dirty = l, true
		return nil
	})
}

// SetBackground decodes an image (at most MaxBackgroundBytes) with ffmpeg and draws it,
// scaled to cover the picture, behind the tiles; nil goes back to black.
func (c *Compositor) SetBackground(r io.Reader) error {
	var bg *frame
	if r != nil {
		var err error
		if bg, err = decodeBackground(&c.opts, r); err != nil {
			return err
		}
	}
	return c.do(func() error {
		c.bg = bg
		return nil
	})
}

// Stats returns the counters.
func (c *Compositor) Stats() (Stats, error) {
	var s Stats
	err := c.do(func() error {
		s = c.stats
		s.Tiles, s.AudioTracks = len(c.tiles), len(c.audio)
		s.PIDs = []int{c.enc.proc.pid()}
		for _, id := range c.order {
			if in := c.tiles[id].in; in != nil {
				s.PIDs = append(s.PIDs, in.proc.pid())
			}
		}
		for _, a := range c.audio {
			s.PIDs = append(s.PIDs, a.in.proc.pid())
		}
		return nil
	})
	return s, err
}

// Close stops every decoder and the encoder (which ends the RTMP session cleanly) and
// waits for all ffmpeg children to be reaped. It returns the error that ended the output
// early, if any.
func (c *Compositor) Close() error {
	c.closeOnce.Do(func() { close(c.closeReq) })
	<-c.done
	if errors.Is(c.err, errClosedByCaller) {
		return nil
	}
	return c.err
}

// Done is closed when the output has ended (Close, or the encoder failed: see Err).
func (c *Compositor) Done() <-chan struct{} { return c.done }

// Err is why the output ended; nil before Done is closed or after a plain Close.
func (c *Compositor) Err() error {
	select {
	case <-c.done:
		if errors.Is(c.err, errClosedByCaller) {
			return nil
		}
		return c.err
	default:
		return nil
	}
}

var errClosedByCaller = fmt.Errorf("%w by caller", ErrClosed)

func (c *Compositor) stopInput(in *input) {
	c.stops.Add(1)
	go func() {
		defer c.stops.Done()
		in.stop()
	}()
}

// run is the owner goroutine: commands, decoded frames and PCM in; pictures and mixed audio
// out to the encoder at real-time rates.
func (c *Compositor) run() {
	o := &c.opts
	vout := make(chan *frame, 2)
	vfree := make(chan *frame, 3)
	for range cap(vfree) {
		vfree <- newFrame(o.Width, o.Height)
	}
	aout := make(chan []int16, 50)
	writeErr := make(chan error, 2)
	started := make(chan struct{}) // closed once ffmpeg has taken the first picture
	var writers sync.WaitGroup
	writers.Add(2)
	go func() {
		defer writers.Done()
		first := true
		for f := range vout {
			if err := c.enc.writeVideo(f); err != nil {
				select {
				case writeErr <- err:
				default:
				}
			}
			if first {
				first = false
				close(started)
			}
			vfree <- f
		}
	}()
	go func() {
		defer writers.Done()
		var scratch bytes.Buffer
		for pcm := range aout {
			if err := c.enc.writeAudio(pcm, &scratch); err != nil {
				select {
				case writeErr <- err:
				default:
				}
			}
		}
	}()

	// The clock starts when ffmpeg (started, probing its inputs) has read the first picture,
	// so its start-up does not count as the encoder being behind.
	first := <-vfree
	c.compose(first, time.Now())
	vout <- first
	var tickC <-chan time.Time
	var start time.Time
	sentV, sentA := int64(1), int64(0)
	c.stats.FramesOut = 1
	acc := make([]int32, chunkSamples*2)
	var bufs []*audioBuf
	var end error
loop:
	for {
		select {
		case fn := <-c.cmds:
			fn()
			c.relayout() // the new sizes are told at once, not at the next picture
		case m := <-c.frames:
			c.onFrame(m)
		case m := <-c.pcm:
			if a := c.audio[m.in.id]; a != nil && a.in == m.in {
				a.buf.push(m.pcm)
			}
		case <-started:
			started = nil
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			tickC, start = tick.C, time.Now()
		case now := <-tickC:
			el := now.Sub(start)
			// video: frame n covers [n/FPS, (n+1)/FPS)
			due := int64(el)*int64(o.FPS)/int64(time.Second) + 1
			if due-sentV > int64(2*o.FPS) {
				c.log.Warn("compositor: encoder behind, skipping pictures", "frames", due-sentV-1)
				c.stats.FramesSkipped += due - sentV - 1
				sentV = due - 1
			}
			var first *frame
			for sentV < due {
				var f *frame
				select {
				case f = <-vfree:
				default:
				}
				if f == nil {
					break // the writer is busy; catch up on a later tick
				}
				if first == nil {
					c.compose(f, now)
					first = f
				} else {
					f.copyFrom(first)
				}
				vout <- f
				sentV++
				c.stats.FramesOut++
			}
			// audio: 20 ms chunks
			dueA := int64(el) * sampleRate / int64(time.Second)
			if dueA-sentA > 2*sampleRate {
				sentA = dueA - dueA%chunkSamples
			}
			bufs = bufs[:0]
			for _, a := range c.audio {
				bufs = append(bufs, &a.buf)
			}
			for dueA-sentA >= chunkSamples && len(aout) < cap(aout) {
				out := make([]int16, chunkSamples*2)
				mixInto(out, acc, bufs)
				aout <- out
				sentA += chunkSamples
				c.stats.AudioChunks++
			}
		case err := <-writeErr:
			end = fmt.Errorf("%w: encoder input: %v: %s", ErrClosed, err, c.enc.proc.stderr.String())
			break loop
		case <-c.enc.proc.done:
			end = fmt.Errorf("%w: encoder exited: %v: %s", ErrClosed, c.enc.proc.err, c.enc.proc.stderr.String())
			break loop
		case <-c.closeReq:
			end = errClosedByCaller
			break loop
		}
	}
	if !errors.Is(end, errClosedByCaller) {
		c.log.Error("compositor: output ended", "err", end)
	}
	for _, t := range c.tiles {
		if t.in != nil {
			c.stopInput(t.in)
		}
	}
	for _, a := range c.audio {
		c.stopInput(a.in)
	}
	// stopping inputs may need the owner to take their last frame/PCM off the channels
	stopped := make(chan struct{})
	go func() { c.stops.Wait(); close(stopped) }()
	for waiting := true; waiting; {
		select {
		case <-stopped:
			waiting = false
		case <-c.frames:
		case <-c.pcm:
		}
	}
	close(vout)
	close(aout)
	// let the writers hand over what is queued, but not forever: an encoder that stopped
	// reading (stuck connecting) is unblocked by closing its inputs in enc.stop
	flushed := make(chan struct{})
	go func() { writers.Wait(); close(flushed) }()
	select {
	case <-flushed:
	case <-time.After(3 * time.Second):
	}
	c.enc.stop()
	<-flushed
	c.err = end
	close(c.done)
}

func (c *Compositor) onFrame(m videoFrameMsg) {
	t := c.tiles[m.in.id]
	if t == nil || t.in != m.in {
		return
	}
	if t.last == nil && !t.shown {
		t.shown = true
		c.log.Info("compositor: first picture", "id", t.id, "size", fmt.Sprintf("%dx%d", m.f.W, m.f.H), "after", time.Since(t.added).Round(time.Millisecond))
	}
	if t.last != nil {
		select {
		case t.in.free <- t.last:
		default:
		}
	}
	t.last, t.lastAt = m.f, time.Now()
}

func (c *Compositor) compose(dst *frame, now time.Time) {
	if c.bg != nil {
		dst.copyFrom(c.bg)
	} else {
		dst.fill(rect{0, 0, dst.W, dst.H}, defaultBackground)
	}
	c.relayout()
	for _, p := range c.places {
		t := c.tiles[p.ID]
		if t.muted || t.last == nil || now.Sub(t.lastAt) > staleAfter {
			placeholder(dst, p.R, t.name)
			continue
		}
		c.sc.blit(dst, p.R, t.last, p.Crop)
	}
}

// relayout lays the tiles out again if something changed and tells the videos' sizes.
func (c *Compositor) relayout() {
	if c.dirty {
		c.places = arrange(c.layout, c.order, c.speaker, c.screen, c.opts.Width, c.opts.Height)
		c.dirty = false
	}
	for _, p := range c.places {
		c.tellSize(c.tiles[p.ID], p)
	}
}

// tellSize gives Options.VideoSize the size tile t's video is shown at in placement p, if it
// changed.
func (c *Compositor) tellSize(t *tile, p placement) {
	if c.opts.VideoSize == nil || t.in == nil {
		return
	}
	aspect := 16.0 / 9 // a camera's, until the first picture tells
	if t.last != nil && t.last.H > 0 {
		aspect = float64(t.last.W) / float64(t.last.H)
	}
	w, h := shownSize(p, t.in.boxW, t.in.boxH, aspect)
	if [2]int{w, h} == t.told {
		return
	}
	t.told = [2]int{w, h}
	c.opts.VideoSize(t.id, w, h)
}
