// Package hls cuts H.264/AAC packets into HLS segments and writes media playlists (RFC 8216
// and its 2nd edition, RFC 8216bis): a sliding-window live playlist and a growing VOD
// playlist. Segments are MPEG-TS (go-astits) or fMP4/CMAF (mediacommon's fmp4); fMP4 segments
// may be cut into parts for Low-Latency HLS (EXT-X-PART, EXT-X-PRELOAD-HINT). Each recording
// directory also gets variant.json, what a master playlist says of it (variant.go).
package hls

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/asticode/go-astits"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
)

// File names inside SegmenterConfig.Dir.
const (
	LivePlaylist = "live.m3u8"
	VODPlaylist  = "vod.m3u8"
)

// SegmentName is the file name of MPEG-TS segment seq.
func SegmentName(seq int) string { return "seg-" + strconv.Itoa(seq) + ".ts" }

// Container is the segment format.
type Container int

// The segment formats.
const (
	ContainerTS   Container = iota // MPEG-TS segments seg-N.ts
	ContainerFMP4                  // fMP4 segments seg-N.m4s, parts seg-N.P.m4s, init sections init-N.mp4
)

// FMP4SegmentName is the file name of fMP4 segment seq.
func FMP4SegmentName(seq int) string { return "seg-" + strconv.Itoa(seq) + ".m4s" }

// PartName is the file name of part i of fMP4 segment seq.
func PartName(seq, i int) string { return "seg-" + strconv.Itoa(seq) + "." + strconv.Itoa(i) + ".m4s" }

// InitName is the file name of the init section first used by segment seq.
func InitName(seq int) string { return "init-" + strconv.Itoa(seq) + ".mp4" }

func (s *Segmenter) segName(seq int) string {
	if s.cfg.Container == ContainerFMP4 {
		return FMP4SegmentName(seq)
	}
	return SegmentName(seq)
}

var (
	// ErrDirInUse is returned by NewSegmenter when Dir already holds a recording (vod.m3u8);
	// use OpenSegmenter to continue it.
	ErrDirInUse = errors.New("hls: directory already holds a recording")
	// ErrFinished is returned when the Segmenter is used after Finish.
	ErrFinished = errors.New("hls: segmenter finished")
)

// SegmenterConfig configures a Segmenter.
type SegmenterConfig struct {
	// Dir receives the segments and playlists (created if missing).
	Dir string
	// TargetDuration: a segment is cut at the first video keyframe at or after this duration
	// (audio-only: at the first audio frame at/after it). Default 2s.
	TargetDuration time.Duration
	// LiveWindow is the number of segments in live.m3u8 (default 6).
	LiveWindow int
	// Logger is optional.
	Logger *slog.Logger
	// OnSegment is called after a segment file and both playlists are written (outside the
	// Segmenter's lock, from the goroutine that caused it).
	OnSegment func(SegmentInfo)
	// ProbeDuration: packets are held back until both audio and video have been seen, or until
	// the held packets span this long (default 1s); then the PMT is written with the tracks seen.
	// A track that shows up later is added (new PMT version) at the next segment boundary.
	ProbeDuration time.Duration
	// Container is the segment format (default MPEG-TS).
	Container Container
	// PartDuration > 0 (fMP4 only) cuts segments into parts of about this duration, each a file
	// of its own listed as EXT-X-PART as soon as it is written, with EXT-X-PRELOAD-HINT and
	// EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD,PART-HOLD-BACK (LL-HLS).
	PartDuration time.Duration
	// HoldBack > 0 writes EXT-X-SERVER-CONTROL:HOLD-BACK (raised to 3 target durations).
	HoldBack time.Duration
}

// SegmentInfo describes a finished segment.
type SegmentInfo struct {
	Seq           int
	Duration      time.Duration
	Path          string // Dir joined with the file name
	Discontinuity bool   // EXT-X-DISCONTINUITY precedes it
	// FirstKeyframeDTS is the packet DTS (as given to WritePacket) the segment starts with: a
	// video keyframe, or for audio-only streams the first audio frame.
	FirstKeyframeDTS time.Duration
}

type segment struct {
	seq   int
	dur   time.Duration
	disc  bool
	init  string     // fMP4: its init section
	parts []partInfo // fMP4 with parts: kept for the last few segments only
}

type partInfo struct {
	dur         time.Duration
	independent bool
}

type openSegment struct {
	seq      int
	f        *os.File
	bw       *bufio.Writer
	start    time.Duration
	disc     bool
	packets  int
	maxEnd   time.Duration
	lastDTS  [3]time.Duration
	lastDiff [3]time.Duration
	seen     [3]bool
	frames   int // video

	// fMP4
	init      string
	pb        partBuilder
	parts     []partInfo
	partStart time.Duration
}

const (
	videoPID uint16 = 0x100
	audioPID uint16 = 0x101
	// tsOffset is added to every timestamp written to MPEG-TS so that slightly negative
	// timestamps stay positive.
	tsOffset = time.Second
	// Jumps in one track's DTS larger than these (without Discontinuity) start a new segment
	// with EXT-X-DISCONTINUITY.
	maxBackwardJump = time.Second
	maxForwardJump  = 30 * time.Second
)

// Segmenter writes HLS segments and playlists. Its methods may be called from different
// goroutines (they are serialized).
type Segmenter struct {
	mu  sync.Mutex
	cfg SegmenterConfig
	log *slog.Logger

	segs      []segment
	vodBody   []byte
	totalDisc int
	maxRound  int
	nextSeq   int
	total     time.Duration
	finished  bool

	// one epoch = the packets between two discontinuities
	mux         *tsMuxer
	out         switchWriter
	hasVideo    bool
	hasAudio    bool
	addVideo    bool
	addAudio    bool
	probe       []flv.Packet
	pendingDisc bool
	cur         *openSegment
	bw          *bufio.Writer // the open segment's (cur.bw), kept between segments

	// fMP4
	tracks   trackConfig
	initName string // of this epoch's current tracks; "" until written
	vodInit  string // the last EXT-X-MAP in vodBody
	partSeq  uint32
	maxPart  time.Duration

	stats variantStats
}

type switchWriter struct{ w io.Writer }

func (s *switchWriter) Write(p []byte) (int, error) {
	if s.w == nil {
		return 0, errors.New("hls: no segment open")
	}
	return s.w.Write(p)
}

func (cfg *SegmenterConfig) defaults() error {
	if cfg.Dir == "" {
		return errors.New("hls: SegmenterConfig.Dir is required")
	}
	if cfg.TargetDuration <= 0 {
		cfg.TargetDuration = 2 * time.Second
	}
	if cfg.LiveWindow <= 0 {
		cfg.LiveWindow = 6
	}
	if cfg.ProbeDuration <= 0 {
		cfg.ProbeDuration = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PartDuration > 0 && cfg.Container != ContainerFMP4 {
		return errors.New("hls: parts need the fMP4 container")
	}
	if cfg.PartDuration > 0 && cfg.PartDuration*2 > cfg.TargetDuration {
		return errors.New("hls: PartDuration must be at most half of TargetDuration")
	}
	return nil
}

// NewSegmenter starts a new recording in cfg.Dir. It refuses (ErrDirInUse) a Dir that already
// has a vod.m3u8.
func NewSegmenter(cfg SegmenterConfig) (*Segmenter, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, VODPlaylist)); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrDirInUse, cfg.Dir)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("hls: %w", err)
	}
	return &Segmenter{cfg: cfg, log: cfg.Logger}, nil
}

// OpenSegmenter continues the recording in cfg.Dir (e.g. after a process restart): the
// segments listed in vod.m3u8 are kept, numbering continues after the last one and the next
// segment starts with EXT-X-DISCONTINUITY. Without a vod.m3u8 it starts a new recording. The
// recording keeps the container it was started with (cfg.Container is adjusted to it).
func OpenSegmenter(cfg SegmenterConfig) (*Segmenter, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(cfg.Dir, VODPlaylist))
	if errors.Is(err, os.ErrNotExist) {
		return NewSegmenter(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("hls: %w", err)
	}
	// A recording keeps its container: a latency mode changed between two connections applies
	// to the next recording.
	if fm := bytes.Contains(b, []byte("#EXT-X-MAP:")); fm != (cfg.Container == ContainerFMP4) && len(bytes.TrimSpace(b)) > 0 && bytes.Contains(b, []byte("#EXTINF")) {
		if fm {
			cfg.Container = ContainerFMP4
		} else {
			cfg.Container, cfg.PartDuration = ContainerTS, 0
		}
	}
	segs, err := parseMediaPlaylist(b, cfg.Container)
	if err != nil {
		return nil, err
	}
	s := &Segmenter{cfg: cfg, log: cfg.Logger}
	for _, sg := range segs {
		s.addSegment(sg)
	}
	s.stats = loadVariantStats(cfg.Dir)
	if len(segs) > 0 {
		s.nextSeq = segs[len(segs)-1].seq + 1
		s.pendingDisc = true
	}
	return s, nil
}

// WritePacket adds a packet. Packets of one track must come in DTS order. p.Data is not used
// after WritePacket returns (what is held is copied), so the caller may reuse it.
func (s *Segmenter) WritePacket(p flv.Packet) error {
	s.mu.Lock()
	done, err := s.writePacket(p)
	s.mu.Unlock()
	s.notify(done)
	return err
}

func (s *Segmenter) notify(done []SegmentInfo) {
	if s.cfg.OnSegment == nil {
		return
	}
	for _, info := range done {
		s.cfg.OnSegment(info)
	}
}

func (s *Segmenter) writePacket(p flv.Packet) ([]SegmentInfo, error) {
	if s.finished {
		return nil, ErrFinished
	}
	if p.Kind != flv.Video && p.Kind != flv.Audio {
		return nil, fmt.Errorf("hls: packet kind %d", p.Kind)
	}
	if s.mux != nil {
		return s.writeMedia(p)
	}
	p.Data = bytes.Clone(p.Data) // held past this call: the caller may reuse its buffer
	s.probe = append(s.probe, p)
	var video, audio bool
	lo, hi := p.DTS, p.DTS
	for _, q := range s.probe {
		video = video || q.Kind == flv.Video
		audio = audio || q.Kind == flv.Audio
		lo, hi = min(lo, q.DTS), max(hi, q.DTS)
	}
	if !(video && audio) && hi-lo < s.cfg.ProbeDuration {
		return nil, nil
	}
	return s.flushProbe()
}

// flushProbe starts an epoch with the tracks seen in the held packets and writes them.
func (s *Segmenter) flushProbe() ([]SegmentInfo, error) {
	var done []SegmentInfo
	s.startEpoch()
	held := s.probe
	s.probe = nil
	for _, q := range held {
		if q.Kind == flv.Video {
			s.addVideo = true
		} else {
			s.addAudio = true
		}
		s.tracks.learn(q)
	}
	s.applyTrackChanges()
	for _, q := range held {
		d, err := s.writeMedia(q)
		done = append(done, d...)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (s *Segmenter) startEpoch() {
	s.out = switchWriter{}
	s.mux = newTSMuxer(&s.out)
	s.hasVideo, s.hasAudio, s.addVideo, s.addAudio = false, false, false, false
	s.initName = ""
}

// applyTrackChanges adds the tracks that showed up, between segments.
func (s *Segmenter) applyTrackChanges() {
	if (s.addVideo && !s.hasVideo) || (s.addAudio && !s.hasAudio) {
		s.initName = "" // fMP4: a new init section with the new track
	}
	if s.addVideo && !s.hasVideo {
		_ = s.mux.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: videoPID, StreamType: astits.StreamTypeH264Video})
		s.hasVideo = true
	}
	if s.addAudio && !s.hasAudio {
		_ = s.mux.AddElementaryStream(astits.PMTElementaryStream{ElementaryPID: audioPID, StreamType: astits.StreamTypeAACAudio})
		s.hasAudio = true
	}
	s.addVideo, s.addAudio = false, false
	if s.hasVideo {
		s.mux.SetPCRPID(videoPID)
	} else if s.hasAudio {
		s.mux.SetPCRPID(audioPID)
	}
}

func (s *Segmenter) writeMedia(p flv.Packet) ([]SegmentInfo, error) {
	var done []SegmentInfo
	s.tracks.learn(p)
	if (p.Kind == flv.Video && !s.hasVideo) || (p.Kind == flv.Audio && !s.hasAudio) {
		// A track that was not in the PMT: add it at the next segment.
		if p.Kind == flv.Video {
			s.addVideo = true
		} else {
			s.addAudio = true
		}
		return nil, nil
	}
	if c := s.cur; c != nil {
		cut := false
		if c.seen[p.Kind] {
			if d := p.DTS - c.lastDTS[p.Kind]; d < -maxBackwardJump || d > maxForwardJump {
				s.log.Warn("hls: timestamp jump, starting a discontinuity", "kind", p.Kind.String(), "jump", d.String())
				info, err := s.closeSegment(s.segmentEnd())
				if err != nil {
					return nil, err
				}
				done = append(done, info)
				s.pendingDisc = true
			}
		}
		if s.cur != nil && s.cfg.Container == ContainerFMP4 && p.Kind == flv.Video {
			c.pb.completeVideo(p.DTS) // the previous frame ends here, in the part before any cut
		}
		if s.cur != nil {
			elapsed := p.DTS - c.start
			if s.hasVideo {
				cut = p.Kind == flv.Video && p.Keyframe && elapsed >= s.cfg.TargetDuration
			} else {
				cut = p.Kind == flv.Audio && elapsed >= s.cfg.TargetDuration
			}
		}
		if cut {
			info, err := s.closeSegment(p.DTS)
			if err != nil {
				return done, err
			}
			done = append(done, info)
		} else if s.cur != nil && s.cfg.PartDuration > 0 && (p.Kind == flv.Video || !s.hasVideo) &&
			p.DTS-c.partStart >= s.cfg.PartDuration && !c.pb.empty() {
			if err := s.flushPart(p.DTS); err != nil {
				return done, err
			}
			if err := s.writeLive(); err != nil {
				return done, err
			}
		}
	}
	if s.cur == nil {
		s.applyTrackChanges()
		if s.hasVideo && !(p.Kind == flv.Video && p.Keyframe) {
			return done, nil // a segment starts with a keyframe
		}
		if err := s.openSegment(p.DTS); err != nil {
			return done, err
		}
		if s.cfg.PartDuration > 0 {
			// the hint of the new segment's first part, at once
			if err := s.writeLive(); err != nil {
				return done, err
			}
		}
	}
	return done, s.writeSample(p)
}

func (s *Segmenter) openSegment(start time.Duration) error {
	seq := s.nextSeq
	if s.cfg.Container == ContainerFMP4 && s.initName == "" {
		b, err := marshalInit(s.tracks, s.hasVideo, s.hasAudio)
		if err != nil {
			return err
		}
		if err := writeAtomic(filepath.Join(s.cfg.Dir, InitName(seq)), b); err != nil {
			return err
		}
		s.initName = InitName(seq)
	}
	path := filepath.Join(s.cfg.Dir, s.segName(seq))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("hls: %w", err)
	}
	s.nextSeq++
	if s.bw == nil {
		s.bw = bufio.NewWriterSize(f, 64<<10)
	} else {
		s.bw.Reset(f) // the previous segment flushed it: one buffer for the segmenter's life
	}
	c := &openSegment{seq: seq, f: f, bw: s.bw, start: start, disc: s.pendingDisc, maxEnd: start,
		init: s.initName, partStart: start}
	s.pendingDisc = false
	s.out.w = c.bw
	s.cur = c
	return nil
}

// segmentEnd estimates where the open segment ends: the last DTS of each track plus its last
// frame interval.
func (s *Segmenter) segmentEnd() time.Duration {
	return s.cur.maxEnd
}

func ts90(d time.Duration) int64 {
	return (int64((d+tsOffset)/time.Microsecond) * 9 / 100) & (1<<33 - 1)
}

// writeSample adds p to the open segment.
func (s *Segmenter) writeSample(p flv.Packet) error {
	c := s.cur
	var err error
	switch {
	case s.cfg.Container == ContainerTS:
		err = s.writeTS(p)
	case p.Kind == flv.Video:
		err = c.pb.addVideo(p)
	default:
		err = c.pb.addAudio(p)
	}
	if err != nil {
		return err
	}
	c.packets++
	k := p.Kind
	if k == flv.Video {
		c.frames++
	}
	if c.seen[k] && p.DTS > c.lastDTS[k] {
		c.lastDiff[k] = p.DTS - c.lastDTS[k]
	}
	c.seen[k] = true
	c.lastDTS[k] = p.DTS
	c.maxEnd = max(c.maxEnd, p.DTS+c.lastDiff[k])
	return nil
}

// flushPart writes the samples collected since the last part as the part ending at end: its
// own file (when parts are on) and the tail of the segment's file.
func (s *Segmenter) flushPart(end time.Duration) error {
	c := s.cur
	independent := c.pb.firstKey
	b, err := c.pb.marshal(s.partSeq)
	if err != nil {
		return err
	}
	s.partSeq++
	if s.cfg.PartDuration > 0 {
		if err := writeAtomic(filepath.Join(s.cfg.Dir, PartName(c.seq, len(c.parts))), b); err != nil {
			return err
		}
		dur := max(end-c.partStart, 0)
		c.parts = append(c.parts, partInfo{dur: dur, independent: independent})
		s.maxPart = max(s.maxPart, dur)
	}
	c.partStart = end
	if _, err := c.bw.Write(b); err != nil {
		return fmt.Errorf("hls: writing segment %d: %w", c.seq, err)
	}
	return nil
}

func (s *Segmenter) writeTS(p flv.Packet) error {
	c := s.cur
	pid, streamID := audioPID, uint8(0xc0)
	if p.Kind == flv.Video {
		pid, streamID = videoPID, 0xe0
	}
	pcrPID := audioPID
	if s.hasVideo {
		pcrPID = videoPID
	}
	dts, pts := ts90(p.DTS), ts90(p.PTS)
	var af *astits.PacketAdaptationField
	if pid == pcrPID {
		af = &astits.PacketAdaptationField{
			HasPCR: true,
			PCR:    &astits.ClockReference{Base: dts},
			// A random access point on the PCR PID also makes astits write PAT/PMT first.
			RandomAccessIndicator: p.Keyframe && (p.Kind == flv.Video || c.packets == 0),
		}
	}
	oh := &astits.PESOptionalHeader{
		MarkerBits:             2,
		DataAlignmentIndicator: true,
		PTSDTSIndicator:        astits.PTSDTSIndicatorOnlyPTS,
		PTS:                    &astits.ClockReference{Base: pts},
	}
	if pts != dts {
		oh.PTSDTSIndicator = astits.PTSDTSIndicatorBothPresent
		oh.DTS = &astits.ClockReference{Base: dts}
	}
	_, err := s.mux.WriteData(&astits.MuxerData{
		PID:             pid,
		AdaptationField: af,
		PES: &astits.PESData{
			Header: &astits.PESHeader{StreamID: streamID, OptionalHeader: oh},
			Data:   p.Data,
		},
	})
	if err != nil {
		return fmt.Errorf("hls: writing segment %d: %w", c.seq, err)
	}
	return nil
}

// closeSegment finishes the open segment, ending at end, and rewrites the playlists.
func (s *Segmenter) closeSegment(end time.Duration) (SegmentInfo, error) {
	c := s.cur
	var err error
	if s.cfg.Container == ContainerFMP4 {
		c.pb.completeVideo(-1)
		if !c.pb.empty() {
			err = s.flushPart(end)
		}
	}
	s.cur = nil
	s.out.w = nil
	if ferr := c.bw.Flush(); err == nil {
		err = ferr
	}
	var size int64
	if fi, serr := c.f.Stat(); serr == nil {
		size = fi.Size()
	}
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return SegmentInfo{}, fmt.Errorf("hls: writing segment %d: %w", c.seq, err)
	}
	dur := max(end-c.start, 0)
	s.addSegment(segment{seq: c.seq, dur: dur, disc: c.disc, init: c.init, parts: c.parts})
	s.stats.add(size, c.frames, dur, s.hasVideo)
	if err := s.writePlaylists(); err != nil {
		return SegmentInfo{}, err
	}
	if err := s.writeVariant(); err != nil {
		return SegmentInfo{}, err
	}
	return SegmentInfo{
		Seq:              c.seq,
		Duration:         dur,
		Path:             filepath.Join(s.cfg.Dir, s.segName(c.seq)),
		Discontinuity:    c.disc,
		FirstKeyframeDTS: c.start,
	}, nil
}

// flushEpoch writes held packets and closes the open segment.
func (s *Segmenter) flushEpoch() ([]SegmentInfo, error) {
	var done []SegmentInfo
	if s.mux == nil && len(s.probe) > 0 {
		d, err := s.flushProbe()
		done = append(done, d...)
		if err != nil {
			return done, err
		}
	}
	if s.cur != nil {
		info, err := s.closeSegment(s.segmentEnd())
		if err != nil {
			return done, err
		}
		done = append(done, info)
	}
	return done, nil
}

// Discontinuity ends the current segment now; the next segment starts with
// EXT-X-DISCONTINUITY, a new PAT/PMT (tracks detected again) and fresh continuity counters, so
// timestamps may restart (a reconnect into the same recording).
func (s *Segmenter) Discontinuity() {
	s.mu.Lock()
	if s.finished {
		s.mu.Unlock()
		return
	}
	done, err := s.flushEpoch()
	if err != nil {
		s.log.Error("hls: flushing before a discontinuity", "err", err)
	}
	s.mux = nil
	s.probe = nil
	if len(s.segs) > 0 {
		s.pendingDisc = true
	}
	s.mu.Unlock()
	s.notify(done)
}

// Stop writes the open segment and retires this Segmenter without ending the recording: the
// playlists stay open (no EXT-X-ENDLIST) so that OpenSegmenter can continue them, and later
// calls return ErrFinished (WritePacket) or do nothing. It is what a publisher that left, or was
// replaced, does.
func (s *Segmenter) Stop() error {
	s.mu.Lock()
	if s.finished {
		s.mu.Unlock()
		return nil
	}
	done, err := s.flushEpoch()
	s.finished = true
	s.mux = nil
	s.probe = nil
	s.mu.Unlock()
	s.notify(done)
	return err
}

// Finish writes the last segment and marks both playlists ended (vod.m3u8 becomes
// EXT-X-PLAYLIST-TYPE:VOD). It returns the total duration. Calling it again returns the same.
func (s *Segmenter) Finish() (time.Duration, error) {
	s.mu.Lock()
	if s.finished {
		defer s.mu.Unlock()
		return s.total, nil
	}
	done, err := s.flushEpoch()
	s.finished = true
	if werr := s.writePlaylists(); err == nil {
		err = werr
	}
	total := s.total
	s.mu.Unlock()
	s.notify(done)
	return total, err
}

// Duration is the sum of the finished segments' durations.
func (s *Segmenter) Duration() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// SegmentCount is the number of finished segments.
func (s *Segmenter) SegmentCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.segs)
}

// Abort retires this Segmenter at once without writing anything more: the open segment is
// dropped (its file is left unlisted, and is overwritten by whoever continues the recording)
// and the playlists stay as they were. It is what a writer that lost the right to write does.
func (s *Segmenter) Abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return
	}
	s.finished = true
	if c := s.cur; c != nil {
		_ = c.f.Close()
		s.cur = nil
		s.out.w = nil
	}
	s.mux = nil
	s.probe = nil
	s.bw = nil // it may hold the dropped segment's bytes
}

// EndRecording ends the recording in cfg.Dir that no Segmenter writes any more (its writer
// left, was stopped or crashed): the playlists get EXT-X-ENDLIST and the total duration of the
// segments vod.m3u8 lists is returned. A Dir without vod.m3u8 has recorded nothing: 0, nil.
// Calling it again returns the same.
func EndRecording(cfg SegmenterConfig) (time.Duration, error) {
	if _, err := os.Stat(filepath.Join(cfg.Dir, VODPlaylist)); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	s, err := OpenSegmenter(cfg)
	if err != nil {
		return 0, err
	}
	return s.Finish()
}
