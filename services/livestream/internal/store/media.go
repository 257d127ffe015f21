package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Media is what the ingest learnt of a recording's media from its sequence headers and
// timestamps (the last connection's; nil parts: no such track).
type Media struct {
	Video *VideoMedia `json:"video,omitempty"`
	Audio *AudioMedia `json:"audio,omitempty"`
}

// VideoMedia describes the H.264 track.
type VideoMedia struct {
	Width     int     `json:"width"`
	Height    int     `json:"height"`
	FrameRate float64 `json:"frame_rate,omitempty"` // measured; 0 = unknown
}

// AudioMedia describes the AAC track.
type AudioMedia struct {
	Channels   int `json:"channels"`
	SampleRate int `json:"sample_rate"`
}

// span is one encoder connection of a recording, as stored (unix ns; End 0 while connected).
type span struct {
	Start int64 `json:"s"`
	End   int64 `json:"e,omitempty"`
}

// SetAssetMedia records what the ingest learnt of a recording's media (it is still recording).
func (s *Store) SetAssetMedia(ctx context.Context, assetID string, m Media) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `UPDATE assets SET media = $1 WHERE id = $2 AND status = $3`, string(b), assetID, AssetPreparing)
	return err
}

func decodeMedia(s string) *Media {
	var m Media
	if json.Unmarshal([]byte(s), &m) != nil || (m.Video == nil && m.Audio == nil) {
		return nil
	}
	return &m
}

func decodeSpans(s string) []span {
	var out []span
	_ = json.Unmarshal([]byte(s), &out)
	return out
}

// closeSpan ends the open span of spans at at (ns); it reports whether one was open.
func closeSpan(spans []span, at int64) bool {
	if n := len(spans); n > 0 && spans[n-1].End == 0 {
		spans[n-1].End = max(at, spans[n-1].Start)
		return true
	}
	return false
}

func encodeSpans(spans []span) string {
	b, _ := json.Marshal(spans)
	return string(b)
}

// Track is one of Mux's asset tracks.
type Track struct {
	ID           string   `json:"id"`
	Type         string   `json:"type"`
	Status       string   `json:"status"`
	Duration     *float64 `json:"duration,omitempty"`
	MaxWidth     int      `json:"max_width,omitempty"`
	MaxHeight    int      `json:"max_height,omitempty"`
	MaxFrameRate float64  `json:"max_frame_rate,omitempty"`
	MaxChannels  int      `json:"max_channels,omitempty"`
	Primary      bool     `json:"primary,omitempty"`
}

// RecordingTime is one of Mux's recording_times: an encoder connection's span.
type RecordingTime struct {
	StartedAt string  `json:"started_at"`
	Duration  float64 `json:"duration"`
	Type      string  `json:"type"`
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// describeMedia fills the media fields of r from a.
func describeMedia(r *AssetResource, a Asset) {
	now := time.Now().UnixNano()
	r.RecordingTimes = []RecordingTime{}
	for _, sp := range a.spans {
		end := sp.End
		if end == 0 {
			end = now
		}
		r.RecordingTimes = append(r.RecordingTimes, RecordingTime{StartedAt: time.Unix(0, sp.Start).UTC().Format(time.RFC3339),
			Duration: math.Round(float64(end-sp.Start)/1e6) / 1000, Type: "content"})
	}
	if a.Media == nil {
		return
	}
	status := "preparing"
	if a.Status == AssetReady {
		status = "ready"
	}
	r.Tracks = []Track{}
	if v := a.Media.Video; v != nil && v.Width > 0 && v.Height > 0 {
		r.Tracks = append(r.Tracks, Track{ID: a.ID + "-video", Type: "video", Status: status, Duration: a.Duration,
			MaxWidth: v.Width, MaxHeight: v.Height, MaxFrameRate: v.FrameRate})
		g := gcd(v.Width, v.Height)
		r.AspectRatio = fmt.Sprintf("%d:%d", v.Width/g, v.Height/g)
		short := min(v.Width, v.Height)
		switch {
		case short <= 720:
			r.ResolutionTier = "720p"
		case short <= 1080:
			r.ResolutionTier = "1080p"
		case short <= 1440:
			r.ResolutionTier = "1440p"
		default:
			r.ResolutionTier = "2160p"
		}
		switch {
		case short < 720:
			r.MaxStoredResolution = "SD"
		case short < 1080:
			r.MaxStoredResolution = "HD"
		case short < 2160:
			r.MaxStoredResolution = "FHD"
		default:
			r.MaxStoredResolution = "UHD"
		}
		r.MaxStoredFrameRate = v.FrameRate
		if r.MaxStoredFrameRate == 0 {
			r.MaxStoredFrameRate = -1 // Mux: -1 when it is not known
		}
	}
	if au := a.Media.Audio; au != nil {
		r.Tracks = append(r.Tracks, Track{ID: a.ID + "-audio", Type: "audio", Status: status, Duration: a.Duration,
			MaxChannels: au.Channels, Primary: true})
		if a.Media.Video == nil {
			r.ResolutionTier, r.MaxStoredResolution = "audio-only", "Audio only"
		}
	}
}
