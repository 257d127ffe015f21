package compositor

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// encoder is the one ffmpeg that turns raw yuv420p (stdin) and s16le PCM (fd 3) into H.264 +
// AAC in FLV over RTMP. Its input timestamps come from counting: frame n is at n/FPS, sample
// n at n/48000, so the owner must write both at real-time rates without gaps.
type encoder struct {
	proc   *proc
	audioW *os.File
}

func startEncoder(o *Options) (*encoder, error) {
	ar, aw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFFmpeg, err)
	}
	gop := strconv.Itoa(2 * o.FPS)
	vb := strconv.Itoa(o.VideoBitrate)
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", fmt.Sprintf("%dx%d", o.Width, o.Height),
		"-framerate", strconv.Itoa(o.FPS), "-thread_queue_size", "64", "-i", "pipe:0",
		"-f", "s16le", "-ar", strconv.Itoa(sampleRate), "-ac", "2", "-thread_queue_size", "512", "-i", "pipe:3",
		"-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-preset", o.Preset, "-tune", "zerolatency", "-pix_fmt", "yuv420p",
		"-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
		"-b:v", vb, "-maxrate", vb, "-bufsize", strconv.Itoa(o.VideoBitrate * 2),
		"-c:a", "aac", "-b:a", strconv.Itoa(o.AudioBitrate), "-ar", strconv.Itoa(sampleRate), "-ac", "2",
		"-flvflags", "no_duration_filesize", "-f", "flv", o.RTMPURL}
	p, err := startProc(o.FFmpeg, args, ar)
	_ = ar.Close()
	if err != nil {
		_ = aw.Close()
		return nil, err
	}
	return &encoder{proc: p, audioW: aw}, nil
}

// writeVideo writes one picture; it blocks while ffmpeg is busy.
func (e *encoder) writeVideo(f *frame) error {
	_, err := e.proc.stdin.Write(f.Buf)
	return err
}

func (e *encoder) writeAudio(pcm []int16, scratch *bytes.Buffer) error {
	scratch.Reset()
	for _, s := range pcm {
		scratch.WriteByte(byte(s))
		scratch.WriteByte(byte(uint16(s) >> 8))
	}
	_, err := e.audioW.Write(scratch.Bytes())
	return err
}

// stop ends the inputs so ffmpeg flushes and closes the RTMP session, then reaps it.
func (e *encoder) stop() {
	_ = e.audioW.Close()
	e.proc.stop(5 * time.Second)
}
