package hls

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// VariantFile is the file in a recording directory that describes its media for a master
// playlist (written after every segment).
const VariantFile = "variant.json"

// Variant is what a master playlist's EXT-X-STREAM-INF says of one media playlist, measured
// from the segments written so far.
type Variant struct {
	Bandwidth        int64   `json:"bandwidth"`         // peak segment bit rate, bit/s
	AverageBandwidth int64   `json:"average_bandwidth"` // bit/s over every segment
	Codecs           string  `json:"codecs"`            // RFC 6381, e.g. "avc1.64001f,mp4a.40.2"
	Width            int     `json:"width,omitempty"`
	Height           int     `json:"height,omitempty"`
	FrameRate        float64 `json:"frame_rate,omitempty"`

	Totals variantStats `json:"totals"`
}

type variantStats struct {
	Bytes        int64   `json:"bytes"`
	Seconds      float64 `json:"seconds"`
	PeakBitRate  int64   `json:"peak_bit_rate"`
	VideoFrames  int64   `json:"video_frames"`
	VideoSeconds float64 `json:"video_seconds"`
}

func (st *variantStats) add(size int64, frames int, dur time.Duration, video bool) {
	if dur <= 0 {
		return
	}
	st.Bytes += size
	st.Seconds += dur.Seconds()
	// A segment much shorter than the others (the last one before a reconnect) would make a
	// meaningless peak: count segments of at least half a second.
	if dur >= 500*time.Millisecond {
		st.PeakBitRate = max(st.PeakBitRate, int64(float64(size*8)/dur.Seconds()))
	}
	if video {
		st.VideoFrames += int64(frames)
		st.VideoSeconds += dur.Seconds()
	}
}

func loadVariantStats(dir string) variantStats {
	v, err := ReadVariant(dir)
	if err != nil {
		return variantStats{}
	}
	return v.Totals
}

// ReadVariant reads the VariantFile of a recording directory.
func ReadVariant(dir string) (Variant, error) {
	var v Variant
	b, err := os.ReadFile(filepath.Join(dir, VariantFile))
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("hls: %s: %w", VariantFile, err)
	}
	return v, nil
}

// codecs is the RFC 6381 CODECS value of the tracks on.
func (s *Segmenter) variant() Variant {
	v := Variant{Totals: s.stats}
	st := s.stats
	if st.Seconds > 0 {
		v.AverageBandwidth = int64(float64(st.Bytes*8) / st.Seconds)
	}
	v.Bandwidth = max(st.PeakBitRate, v.AverageBandwidth)
	var cs []byte
	if s.hasVideo && len(s.tracks.sps) >= 4 {
		cs = fmt.Appendf(cs, "avc1.%02x%02x%02x", s.tracks.sps[1], s.tracks.sps[2], s.tracks.sps[3])
		var sps h264.SPS
		if err := sps.Unmarshal(s.tracks.sps); err == nil {
			v.Width, v.Height = sps.Width(), sps.Height()
		}
		if st.VideoSeconds > 0 {
			v.FrameRate = math.Round(float64(st.VideoFrames)/st.VideoSeconds*1000) / 1000
		}
	}
	if s.hasAudio && s.tracks.audio != nil {
		if len(cs) > 0 {
			cs = append(cs, ',')
		}
		cs = fmt.Appendf(cs, "mp4a.40.%d", int(s.tracks.audio.Type))
	}
	v.Codecs = string(cs)
	return v
}

func (s *Segmenter) writeVariant() error {
	b, err := json.Marshal(s.variant())
	if err != nil {
		return fmt.Errorf("hls: %w", err)
	}
	return writeAtomic(filepath.Join(s.cfg.Dir, VariantFile), b)
}

// MasterEntry is one variant of a master playlist.
type MasterEntry struct {
	Variant
	URI string
}

// ErrNoVariant: a master playlist needs at least one variant.
var ErrNoVariant = errors.New("hls: no variant to list")

// Master writes a master playlist (RFC 8216 4.3.4.2) listing entries in the order given.
func Master(entries []MasterEntry) ([]byte, error) {
	if len(entries) == 0 {
		return nil, ErrNoVariant
	}
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	for _, e := range entries {
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d", max(e.Bandwidth, 1))
		if e.AverageBandwidth > 0 {
			fmt.Fprintf(&b, ",AVERAGE-BANDWIDTH=%d", e.AverageBandwidth)
		}
		if e.Codecs != "" {
			fmt.Fprintf(&b, ",CODECS=%q", e.Codecs)
		}
		if e.Width > 0 && e.Height > 0 {
			fmt.Fprintf(&b, ",RESOLUTION=%dx%d", e.Width, e.Height)
		}
		if e.FrameRate > 0 {
			b.WriteString(",FRAME-RATE=" + strconv.FormatFloat(e.FrameRate, 'f', 3, 64))
		}
		b.WriteString("\n" + e.URI + "\n")
	}
	return b.Bytes(), nil
}
