// Package ingest joins the RTMP server to the live stream sessions and the HLS recorder: a
// publish becomes a session (stream key, one-publisher lock, events), its FLV tags are demuxed
// into H.264/AAC packets and cut into MPEG-TS segments in the asset's recording directory.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/hls"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmp"
	"github.com/spacecast/spacecast/services/livestream/internal/session"
)

// Sessions starts ingest sessions (a *session.Manager).
type Sessions interface {
	Begin(ctx context.Context, key string, kick func()) (*session.Session, error)
	RecordingEnded(ctx context.Context, assetID string) (bool, error)
}

var _ Sessions = (*session.Manager)(nil)

// Options configure an Ingest.
type Options struct {
	Sessions        Sessions
	Dir             string        // recordings: <Dir>/<asset id>/{live.m3u8,vod.m3u8,seg-N.ts}
	SegmentDuration time.Duration // HLS target duration (default 2 s)
	LiveWindow      int           // segments in the live playlist (default 6)
	Logger          *slog.Logger
	Registerer      prometheus.Registerer // optional
}

// Ingest is the rtmp.Handler of the live stream service.
type Ingest struct {
	o   Options
	log *slog.Logger

	mu   sync.Mutex
	open map[string]*hls.Segmenter // by asset id: recordings with a publisher on this instance

	segDelay *prometheus.HistogramVec
	streams  prometheus.Gauge
	refused  *prometheus.CounterVec
}

var _ rtmp.Handler = (*Ingest)(nil)

// New checks the options and creates the recordings directory.
func New(o Options) (*Ingest, error) {
	if o.Sessions == nil || o.Dir == "" || o.Logger == nil {
		return nil, errors.New("ingest: Sessions, Dir and Logger are required")
	}
	if o.SegmentDuration <= 0 {
		o.SegmentDuration = 2 * time.Second
	}
	if o.LiveWindow <= 0 {
		o.LiveWindow = 6
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("ingest: recordings directory: %w", err)
	}
	in := &Ingest{o: o, log: o.Logger, open: map[string]*hls.Segmenter{},
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

func (in *Ingest) segmenterConfig(assetID string, log *slog.Logger) hls.SegmenterConfig {
	return hls.SegmenterConfig{Dir: in.AssetDir(assetID), TargetDuration: in.o.SegmentDuration, LiveWindow: in.o.LiveWindow, Logger: log}
}

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
	sess, err := in.o.Sessions.Begin(ctx, req.StreamKey, req.Close)
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
	s := &stream{in: in, sess: sess, demux: flv.NewDemuxer(), assetID: sess.Asset.ID,
		log: in.log.With("live_stream_id", sess.Stream.ID, "asset_id", sess.Asset.ID), arrivals: map[time.Duration]time.Time{}}
	cfg := in.segmenterConfig(sess.Asset.ID, s.log)
	cfg.OnSegment = s.onSegment
	var seg *hls.Segmenter
	in.mu.Lock()
	if old := in.open[s.assetID]; old != nil {
		// A publisher that went silent on this instance and lost the stream: retire its
		// segmenter so that it cannot write over the recording this one continues.
		if err := old.Stop(); err != nil {
			s.log.Warn("retiring the previous publisher's segmenter", "err", err)
		}
		delete(in.open, s.assetID)
	}
	if sess.Resumed {
		seg, err = hls.OpenSegmenter(cfg) // continues with EXT-X-DISCONTINUITY
	} else {
		seg, err = hls.NewSegmenter(cfg)
	}
	if err == nil {
		in.open[s.assetID] = seg
	}
	in.mu.Unlock()
	if err != nil {
		s.log.Error("opening the recording", "err", err)
		if endErr := sess.End(context.WithoutCancel(ctx)); endErr != nil {
			s.log.Error("ending the session", "err", endErr)
		}
		return nil, &rtmp.StatusError{Code: "NetStream.Publish.BadConnection", Description: "the server could not open the recording"}
	}
	s.seg = seg
	in.streams.Inc()
	s.log.Info("publishing", "remote", req.RemoteAddr, "resumed", sess.Resumed)
	return s, nil
}

// Finish ends the recording of an asset on disk: the playlists get EXT-X-ENDLIST and the VOD
// playlist becomes EXT-X-PLAYLIST-TYPE:VOD. It is called when the asset becomes ready, on
// whichever instance ended it; a publisher still writing on this instance is cut off.
func (in *Ingest) Finish(assetID string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	seg := in.open[assetID]
	if seg == nil {
		dir := in.AssetDir(assetID)
		if _, err := os.Stat(filepath.Join(dir, hls.VODPlaylist)); errors.Is(err, os.ErrNotExist) {
			return nil // nothing was ever recorded
		}
		var err error
		seg, err = hls.OpenSegmenter(in.segmenterConfig(assetID, in.log))
		if err != nil {
			return err
		}
	}
	_, err := seg.Finish()
	return err
}

// Remove deletes an asset's recording from disk (the asset was deleted).
func (in *Ingest) Remove(assetID string) error {
	in.mu.Lock()
	seg := in.open[assetID]
	in.mu.Unlock()
	if seg != nil {
		seg.Finish() //nolint:errcheck // the files go anyway
	}
	return os.RemoveAll(in.AssetDir(assetID))
}

// stream is one publisher's media path. WriteTag and Close come from the connection's goroutine.
type stream struct {
	in      *Ingest
	sess    *session.Session
	demux   *flv.Demuxer
	seg     *hls.Segmenter
	assetID string
	log     *slog.Logger

	mu       sync.Mutex
	arrivals map[time.Duration]time.Time // video keyframe DTS → when it arrived (pruned per segment)
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
	ctx := context.Background()
	for _, p := range pkts {
		if p.Kind == flv.Video && p.Keyframe {
			s.mu.Lock()
			s.arrivals[p.DTS] = time.Now()
			s.mu.Unlock()
		}
		if err := s.sess.Media(ctx, p.DTS); err != nil {
			return fmt.Errorf("recording the session: %w", err)
		}
		if err := s.seg.WritePacket(p); err != nil {
			return err
		}
	}
	return nil
}

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
	if err := s.sess.Playable(context.Background()); err != nil {
		s.log.Error("marking the stream active", "err", err)
	}
}

// Close implements rtmp.Stream: the partial segment is written and the session ends (the
// reconnect window starts, or the recording was ended from outside).
func (s *stream) Close(cause error) {
	s.in.mu.Lock()
	if err := s.seg.Stop(); err != nil { // writes the open segment; a no-op once finished
		s.log.Error("writing the last segment", "err", err)
	}
	if s.in.open[s.assetID] == s.seg {
		delete(s.in.open, s.assetID)
	}
	s.in.mu.Unlock()
	s.in.streams.Dec()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.sess.End(ctx); err != nil {
		s.log.Error("ending the session", "err", err)
	}
	// Completed, disabled or deleted (possibly through another instance, which may have closed
	// the playlists before this publisher wrote its last segment): close them again.
	if ended, err := s.in.o.Sessions.RecordingEnded(ctx, s.assetID); err == nil && ended {
		if err := s.in.Finish(s.assetID); err != nil {
			s.log.Error("closing the recording", "err", err)
		}
	}
	s.log.Info("publisher gone", "cause", cause)
}
