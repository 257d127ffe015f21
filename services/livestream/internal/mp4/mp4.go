// Package mp4 makes the static (MP4/M4A) renditions of a recorded asset from its HLS
// recording: a remux with ffmpeg (-c copy, faststart), re-encoding only when a capped
// rendition's source is taller than its cap.
package mp4

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Rendition is a static rendition kind.
type Rendition string

// The rendition kinds made here.
const (
	Highest     Rendition = "highest"
	AudioOnly   Rendition = "audio-only"
	Capped1080p Rendition = "capped-1080p"
)

// Errors.
var (
	// ErrUnknownRendition is returned for a rendition kind this package does not make.
	ErrUnknownRendition = errors.New("mp4: unknown rendition")
	// ErrSkipped is returned for a fixed-resolution rendition taller than the source (the
	// file's status is then "skipped").
	ErrSkipped = errors.New("mp4: source is smaller than the rendition")
)

// fixed are the fixed-resolution renditions and their heights.
var fixed = map[Rendition]int{"2160p": 2160, "1440p": 1440, "1080p": 1080, "720p": 720, "540p": 540, "480p": 480, "360p": 360, "270p": 270}

// Name is the file name of a rendition (highest.mp4, audio.m4a, capped-1080p.mp4).
func Name(r Rendition) (string, error) {
	switch r {
	case Highest:
		return "highest.mp4", nil
	case AudioOnly:
		return "audio.m4a", nil
	case Capped1080p:
		return "capped-1080p.mp4", nil
	}
	if _, ok := fixed[r]; ok {
		return string(r) + ".mp4", nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownRendition, string(r))
}

// Maker runs ffmpeg and ffprobe.
type Maker struct {
	FFmpeg, FFprobe string
}

// NewMaker checks the binaries are named.
func NewMaker(ffmpeg, ffprobe string) (*Maker, error) {
	if ffmpeg == "" || ffprobe == "" {
		return nil, errors.New("mp4: ffmpeg and ffprobe paths are required")
	}
	return &Maker{FFmpeg: ffmpeg, FFprobe: ffprobe}, nil
}

// Make writes rendition r of the recording whose playlist is playlist into outDir
// (atomically: a temporary file renamed into place) and returns the file's path.
func (m *Maker) Make(ctx context.Context, playlist, outDir string, r Rendition) (string, error) {
	name, err := Name(r)
	if err != nil {
		return "", err
	}
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-allowed_extensions", "ALL", "-i", playlist, "-sn", "-dn"}
	switch r {
	case Highest:
		args = append(args, "-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy")
	case AudioOnly:
		args = append(args, "-vn", "-map", "0:a:0", "-c:a", "copy")
	case Capped1080p:
		h, err := m.height(ctx, playlist)
		if err != nil {
			return "", err
		}
		args = append(args, "-map", "0:v:0?", "-map", "0:a:0?")
		if h > 1080 {
			args = append(args, scale(1080)...)
		} else {
			args = append(args, "-c", "copy")
		}
	default: // a fixed resolution (Name checked it)
		want := fixed[r]
		h, err := m.height(ctx, playlist)
		if err != nil {
			return "", err
		}
		if h < want {
			return "", fmt.Errorf("%w: %d lines, %s asked", ErrSkipped, h, r)
		}
		args = append(args, "-map", "0:v:0", "-map", "0:a:0?")
		if h > want {
			args = append(args, scale(want)...)
		} else {
			args = append(args, "-c", "copy")
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(outDir, name)
	tmp := filepath.Join(outDir, ".tmp-"+name)
	args = append(args, "-bsf:a", "aac_adtstoasc", "-movflags", "+faststart", "-f", "mp4", tmp)
	if r == AudioOnly {
		args[len(args)-2] = "ipod"
	}
	cmd := exec.CommandContext(ctx, m.FFmpeg, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("mp4: ffmpeg %s: %w: %s", name, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return final, nil
}

// scale re-encodes the video to h lines, keeping the audio.
func scale(h int) []string {
	return []string{"-vf", "scale=-2:" + strconv.Itoa(h), "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-c:a", "copy"}
}

// height is the first video stream's height (0 without video).
func (m *Maker) height(ctx context.Context, in string) (int, error) {
	out, err := exec.CommandContext(ctx, m.FFprobe, "-v", "error", "-allowed_extensions", "ALL",
		"-select_streams", "v:0", "-show_entries", "stream=height", "-of", "csv=p=0", in).Output()
	if err != nil {
		return 0, fmt.Errorf("mp4: ffprobe: %w", err)
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return 0, nil
	}
	return strconv.Atoi(strings.Split(s, "\n")[0])
}

// Info describes a made file (what the asset's static_renditions files show).
type Info struct {
	Width, Height int
	Bitrate       int64 // bits per second (the container's)
	Size          int64 // bytes
	Duration      float64
}

// Probe reads a made file's size, bitrate and first video stream's dimensions.
func (m *Maker) Probe(ctx context.Context, path string) (Info, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Info{}, err
	}
	out, err := exec.CommandContext(ctx, m.FFprobe, "-v", "error", "-show_entries",
		"stream=codec_type,width,height:format=bit_rate,duration", "-of", "json", path).Output()
	if err != nil {
		return Info{}, fmt.Errorf("mp4: ffprobe %s: %w", filepath.Base(path), err)
	}
	var p struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
		Format struct {
			BitRate  string `json:"bit_rate"`
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		return Info{}, fmt.Errorf("mp4: ffprobe %s: %w", filepath.Base(path), err)
	}
	info := Info{Size: st.Size()}
	for _, s := range p.Streams {
		if s.CodecType == "video" {
			info.Width, info.Height = s.Width, s.Height
			break
		}
	}
	info.Bitrate, _ = strconv.ParseInt(p.Format.BitRate, 10, 64)
	info.Duration, _ = strconv.ParseFloat(p.Format.Duration, 64)
	return info, nil
}
