// Package ingest joins the RTMP server to the live stream sessions: a publish becomes a session
// (stream key, the stream's lease and owner, events), its FLV tags are demuxed into H.264/AAC
// packets that the session's owner cuts into MPEG-TS segments in the asset's recording
// directory.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/hls"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
	"github.com/spacecast/spacecast/services/livestream/internal/session"
	"github.com/spacecast/spacecast/services/livestream/internal/simulcast"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
	"github.com/spacecast/spacecast/services/livestream/internal/transcode"
)

// Sessions starts ingest sessions (a *session.Manager).
type Sessions interface {
	Begin(ctx context.Context, key string, p session.Publisher) (*session.Session, error)
}

var _ Sessions = (*session.Manager)(nil)

// MediaRecorder keeps what the ingest learnt of a recording's media (a *store.Store).
type MediaRecorder interface {
	SetAssetMedia(ctx context.Context, assetID string, m store.Media) error
}

var _ MediaRecorder = (*store.Store)(nil)

// Options configure an Ingest.
type Options struct {
	Sessions   Sessions
	Media      MediaRecorder // optional: the recording's tracks (asset tracks, resolution, frame rate)
	Dir        string        // recordings: <Dir>/<asset id>/{live.m3u8,vod.m3u8,seg-N.ts}
	Logger     *slog.Logger
	Registerer prometheus.Registerer // optional
	// Transcode turns the adaptive ladder on (SPACECAST_LIVESTREAM_TRANSCODE): standard and
	// reduced latency recordings get transcoded rungs below the source (internal/transcode).
	Transcode       bool
	FFmpeg          string        // ffmpeg binary for the ladder (default "ffmpeg")
	SegmentDuration time.Duration // rung segment duration (default 2 s)
	// Targets and Simulcast push the source to the live stream's simulcast targets while it
	// is published (nil Targets: no restreaming).
	Targets   Targets
	Simulcast simulcast.Options
}

// Targets lists a live stream's simulcast targets (a *store.Store).
type Targets interface {
	SimulcastTargets(ctx context.Context, liveStreamID string) ([]store.SimulcastTarget, error)
}

var _ Targets = (*store.Store)(nil)

// Ingest is the rtmp.Handler of the live stream service.
type Ingest struct {
	o   Options
	log *slog.Logger

	segDelay *prometheus.HistogramVec
	streams  prometheus.Gauge
	refused  *prometheus.CounterVec
}

var _ rtmp.Handler = (*Ingest)(nil)
var _ rtmp.TagKeeper = (*stream)(nil)

// New checks the options and creates the recordings directory.
func New(o Options) (*Ingest, error) {
	if o.Sessions == nil || o.Dir == "" || o.Logger == nil {
		return nil, errors.New("ingest: Sessions, Dir and Logger are required")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("ingest: recordings directory: %w", err)
	}
	if o.SegmentDuration <= 0 {
		o.SegmentDuration = 2 * time.Second
	}
	in := &Ingest{o: o, log: o.Logger,
		segDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spacecast_livestream_segment_delay_seconds",
			Help:    "Time from a segment's first keyframe arriving over RTMP to the segment being listed in the live playlist.",
			Buckets: []float64{.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 20},
		}, nil),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "spacecast_livestream_publishers", Help: "RTMP publishers of this instance."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spacecast_livestream_publish_refused_total", Help: "Refused RTMP publishes by reason."}, []string{"reason"}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{in.segDelay, in.streams, in.refused} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ingest: metrics: %w", err)
			}
		}
	}
	return in, nil
}

// AssetDir is the recording directory of an asset.
func (in *Ingest) AssetDir(assetID string) string { return filepath.Join(in.o.Dir, assetID) }

// statusFor maps a session error to the onStatus the encoder gets.
func statusFor(err error) (*rtmp.StatusError, string) {
	switch {
	case errors.Is(err, session.ErrBadKey):
		return &rtmp.StatusError{Code: "NetStream.Publish.BadName", Description: "unknown stream key"}, "bad_key"
	case errors.Is(err, session.ErrDisabled):
		return &rtmp.StatusError{Code: "NetStream.Publish.Denied", Description: "live stream is disabled"}, "disabled"
	case errors.Is(err, session.ErrBusy):
		return &rtmp.StatusError{Code: "NetStream.Publish.BadName", Description: "live stream already has a publisher"}, "busy"
	}
	return &rtmp.StatusError{Code: "NetStream.Publish.BadConnection", Description: "the server could not start the stream; try again"}, "error"
}

// Publish implements rtmp.Handler.
func (in *Ingest) Publish(ctx context.Context, req rtmp.PublishRequest) (rtmp.Stream, error) {
	s := &stream{in: in, demux: flv.NewDemuxer(), arrivals: map[time.Duration]time.Time{}}
	proto := store.IngestRTMP
	if req.TLS {
		proto = store.IngestRTMPS
	}
	sess, err := in.o.Sessions.Begin(ctx, req.StreamKey, session.Publisher{Kick: req.Close, OnSegment: s.onSegment, Protocol: proto})
	if err != nil {
		st, reason := statusFor(err)
		in.refused.WithLabelValues(reason).Inc()
		lvl := slog.LevelInfo
		if reason == "error" {
			lvl = slog.LevelError
		}
		in.log.Log(ctx, lvl, "publish refused", "remote", req.RemoteAddr, "reason", reason, "err", err)
		return nil, st
	}
	s.sess = sess
	s.log = in.log.With("live_stream_id", sess.Stream.ID, "asset_id", sess.Asset.ID)
	s.ladder = in.o.Transcode && sess.Stream.LatencyMode != "low"
	if in.o.Targets != nil {
		// Targets cannot change while an encoder is connected (the API refuses it), so the
		// connection's set is read once.
		ts, err := in.o.Targets.SimulcastTargets(ctx, sess.Stream.ID)
		if err != nil {
			s.log.Error("reading the simulcast targets: not restreaming this connection", "err", err)
		}
		s.fanout = simulcast.Start(in.o.Simulcast, sess.Stream.ID, ts)
	}
	in.streams.Inc()
	s.log.Info("publishing", "remote", req.RemoteAddr, "resumed", sess.Resumed)
	return s, nil
}

// Remove deletes an asset's recording from disk (the asset was deleted; it is ready, so
// nothing writes it any more).
func (in *Ingest) Remove(assetID string) error {
	return os.RemoveAll(filepath.Join(in.o.Dir, assetID))
}

// stream is one publisher's media path. WriteTag and Close come from the connection's
// goroutine; the recording is written through the session (the stream's owner decides when
// it stops).
type stream struct {
	in    *Ingest
	sess  *session.Session
	demux *flv.Demuxer
	log   *slog.Logger

	mu       sync.Mutex
	arrivals map[time.Duration]time.Time // video keyframe DTS → when it arrived (pruned per segment)

	probe mediaProbe // only the connection's goroutine uses it

	// the ladder (only the connection's goroutine uses these)
	ladder           bool // wanted for this connection
	tc               *transcode.Process
	videoSH, audioSH *flv.Tag // the last sequence headers, for ffmpeg's start

	fanout *simulcast.Fanout // the simulcast targets' pushers (nil: none)
}

// feedLadder passes tag on to the transcoder, starting it at the first video keyframe once the
// source's size is known (its ladder depends on it).
func (s *stream) feedLadder(tag flv.Tag) {
	key := false
	switch tag.Type {
	case flv.TagVideo:
		h, err := flv.ParseVideoHeader(tag.Data)
		if err != nil {
			return
		}
		if h.PacketType == flv.AVCSequenceHeader && h.FrameType != flv.FrameInfo {
			t := tag
			s.videoSH = &t
		}
		key = h.FrameType == flv.FrameKey && h.PacketType == flv.AVCNALU
	case flv.TagAudio:
		if h, err := flv.ParseAudioHeader(tag.Data); err == nil && h.PacketType == 0 {
			t := tag
			s.audioSH = &t
		}
	}
	if s.tc == nil {
		if !key || s.videoSH == nil {
			return
		}
		s.ladder = false // one try per connection
		vi, ok := s.demux.VideoCodecInfo()
		if !ok {
			return
		}
		tier := transcode.DefaultTier
		if nas := s.sess.Stream.NewAssetSettings; nas != nil && nas.MaxResolutionTier != "" {
			tier = nas.MaxResolutionTier
		}
		rungs, keep := transcode.Plan(vi.Width, vi.Height, tier)
		if len(rungs) == 0 {
			return
		}
		tc, err := transcode.Start(transcode.Options{FFmpeg: s.in.o.FFmpeg, Dir: s.in.AssetDir(s.sess.Asset.ID),
			Ladder: transcode.Ladder{Rungs: rungs, KeepSource: keep}, SegmentDuration: s.in.o.SegmentDuration, Logger: s.log})
		if err != nil {
			s.log.Error("starting the ladder", "err", err)
			return
		}
		s.log.Info("ladder started", "rungs", len(rungs), "source_height", vi.Height, "tier", tier)
		s.tc = tc
		s.ladder = true
		for _, sh := range []*flv.Tag{s.videoSH, s.audioSH} {
			if sh != nil {
				t := *sh
				t.Timestamp = tag.Timestamp
				tc.WriteTag(t)
			}
		}
	}
	s.tc.WriteTag(tag)
}

// probeSpan is how much media the ingest watches before it describes the recording's media.
const probeSpan = 2 * time.Second

// mediaProbe measures a connection's media until it describes it once.
type mediaProbe struct {
	videoFrames          int
	videoFirst, videoAt  time.Duration
	audioFirst, audioAt  time.Duration
	audioSeen, described bool
}

func (m *mediaProbe) add(p flv.Packet) {
	if p.Kind == flv.Video {
		if m.videoFrames == 0 {
			m.videoFirst = p.DTS
		}
		m.videoFrames++
		m.videoAt = p.DTS
		return
	}
	if !m.audioSeen {
		m.audioSeen, m.audioFirst = true, p.DTS
	}
	m.audioAt = p.DTS
}

// ready: enough media to describe it (probeSpan of video, or of audio without video).
func (m *mediaProbe) ready() bool {
	return m.videoAt-m.videoFirst >= probeSpan || (m.videoFrames == 0 && m.audioAt-m.audioFirst >= probeSpan)
}

// describe records the recording's media once per connection (errors are logged: the media
// description is not worth refusing a publisher).
func (s *stream) describe() {
	if s.probe.described || s.in.o.Media == nil {
		return
	}
	s.probe.described = true
	var m store.Media
	if vi, ok := s.demux.VideoCodecInfo(); ok {
		m.Video = &store.VideoMedia{Width: vi.Width, Height: vi.Height}
		if span := s.probe.videoAt - s.probe.videoFirst; s.probe.videoFrames > 1 && span > 0 {
			fps := float64(s.probe.videoFrames-1) / span.Seconds()
			m.Video.FrameRate = math.Round(fps*100) / 100
		}
	}
	if ai, ok := s.demux.AudioCodecInfo(); ok {
		m.Audio = &store.AudioMedia{Channels: ai.Channels, SampleRate: ai.SampleRate}
	}
	if m.Video == nil && m.Audio == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.in.o.Media.SetAssetMedia(ctx, s.sess.Asset.ID, m); err != nil {
		s.log.Warn("recording the media description", "err", err)
	}
}

// WriteTag implements rtmp.Stream.
func (s *stream) WriteTag(tag flv.Tag) error {
	pkts, err := s.demux.Push(tag)
	if err != nil {
		if errors.Is(err, flv.ErrUnsupportedCodec) {
			s.log.Warn("refusing the stream", "err", err)
			return &rtmp.StatusError{Code: "NetStream.Publish.Denied", Description: err.Error()}
		}
		return err
	}
	if s.ladder && (tag.Type == flv.TagVideo || tag.Type == flv.TagAudio) {
		s.feedLadder(tag)
	}
	s.fanout.WriteTag(tag) // never blocks
	for _, p := range pkts {
		if !s.probe.described {
			if s.probe.add(p); s.probe.ready() {
				s.describe()
			}
		}
		if p.Kind == flv.Video && p.Keyframe {
			s.mu.Lock()
			s.arrivals[p.DTS] = time.Now()
			s.mu.Unlock()
		}
		if err := s.sess.WritePacket(p); err != nil {
			if errors.Is(err, hls.ErrFinished) {
				return fmt.Errorf("the recording has ended: %w", err)
			}
			return err
		}
	}
	return nil
}

// KeptTagData implements rtmp.TagKeeper: the demuxer and the segmenter copy what they keep of
// a tag, the simulcast pushers and the ladder keep the tags themselves.
func (s *stream) KeptTagData() bool { return s.fanout != nil || s.ladder || s.tc != nil }

func (s *stream) onSegment(si hls.SegmentInfo) {
	now := time.Now()
	s.mu.Lock()
	if at, ok := s.arrivals[si.FirstKeyframeDTS]; ok {
		s.in.segDelay.WithLabelValues().Observe(now.Sub(at).Seconds())
	}
	for dts := range s.arrivals {
		if dts <= si.FirstKeyframeDTS {
			delete(s.arrivals, dts)
		}
	}
	s.mu.Unlock()
}

// Close implements rtmp.Stream: the session ends (the owner writes the open segment and the
// reconnect window starts, unless the recording was ended from outside).
func (s *stream) Close(cause error) {
	s.in.streams.Dec()
	s.fanout.Stop() // the targets go idle
	s.describe()    // a connection shorter than probeSpan: what it had
	if s.tc != nil {
		// ffmpeg writes its last segments; the rungs' playlists stay open for a reconnect.
		if err := s.tc.Close(10 * time.Second); err != nil {
			s.log.Warn("ending the ladder", "err", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.sess.End(ctx); err != nil {
		s.log.Error("ending the session", "err", err)
	}
	s.log.Info("publisher gone", "cause", cause)
}
