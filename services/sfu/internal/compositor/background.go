package compositor

import (
	"bytes"
	"fmt"
	"io"
	"time"
)

// decodeBackground reads at most MaxBackgroundBytes of an image and has ffmpeg decode it
// once, scaled to cover the output and cropped to it.
func decodeBackground(o *Options, r io.Reader) (*frame, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBackgroundBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackground, err)
	}
	if len(data) > MaxBackgroundBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBackground, MaxBackgroundBytes)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBackground)
	}
	p, err := startProc(o.FFmpeg, []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		"-i", "pipe:0", "-frames:v", "1", "-an",
		"-vf", fmt.Sprintf("scale=%d:%d:force_original_aspect_ratio=increase,crop=%d:%d,format=yuv420p", o.Width, o.Height, o.Width, o.Height),
		"-f", "rawvideo", "pipe:1"})
	if err != nil {
		return nil, err
	}
	go func() {
		_, _ = io.Copy(p.stdin, bytes.NewReader(data))
		_ = p.stdin.Close()
	}()
	f := newFrame(o.Width, o.Height)
	_, rerr := io.ReadFull(p.stdout, f.Buf)
	p.stop(5 * time.Second)
	if rerr != nil {
		return nil, fmt.Errorf("%w: ffmpeg could not decode it: %s", ErrBackground, p.stderr.String())
	}
	return f, nil
}
