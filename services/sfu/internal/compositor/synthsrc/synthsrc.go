// Package synthsrc makes real encoded media for the compositor's tests and benchmark: VP8
// (libvpx) or H.264 (libx264) of a lavfi source and Opus (libopus) sine tones, encoded by ffmpeg into files,
// then packetised with pion and written as live RTP at real-time pace, looping.
package synthsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Writer is where packets go (the compositor's RTPWriter).
type Writer interface {
	WriteRTP(p *rtp.Packet) error
}

func run(ffmpeg string, args ...string) error {
	out, err := exec.Command(ffmpeg, append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ffmpeg %v: %v: %s", args, err, out)
	}
	return nil
}

// VP8 encodes seconds of source (a lavfi graph, e.g. "color=c=red:s=320x240:r=30" or
// "testsrc2=s=1280x720:r=30") to an IVF file in dir, a keyframe every second.
func VP8(ffmpeg, dir, name, source string, seconds int, bitrate string) (string, error) {
	path := filepath.Join(dir, name+".ivf")
	err := run(ffmpeg, "-f", "lavfi", "-i", source, "-t", fmt.Sprint(seconds),
		"-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-g", "30", "-b:v", bitrate,
		"-f", "ivf", path)
	return path, err
}

// H264 encodes seconds of source to an Annex-B H.264 file in dir (constrained baseline,
// one slice per picture, a keyframe every second), as browsers send it.
func H264(ffmpeg, dir, name, source string, seconds int, bitrate string) (string, error) {
	path := filepath.Join(dir, name+".h264")
	err := run(ffmpeg, "-f", "lavfi", "-i", source, "-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-threads", "1", "-bf", "0",
		"-g", "30", "-b:v", bitrate, "-pix_fmt", "yuv420p", "-f", "h264", path)
	return path, err
}

// Opus encodes seconds of a sine tone at freq Hz to an Ogg file in dir, one 20 ms packet per
// page.
func Opus(ffmpeg, dir, name string, freq, seconds int) (string, error) {
	path := filepath.Join(dir, name+".ogg")
	err := run(ffmpeg, "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=48000", freq),
		"-t", fmt.Sprint(seconds), "-ac", "2", "-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20",
		"-page_duration", "20000", "-f", "ogg", path)
	return path, err
}

// SendVP8 writes the IVF file's frames as RTP (payload type 96, 90 kHz) at fps until ctx
// ends, starting over at the end of the file.
func SendVP8(ctx context.Context, path string, fps int, w Writer) error {
	pk := rtp.NewPacketizer(1200, 96, 0x1000+uint32(len(path)), &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewRandomSequencer(), 90000)
	start := time.Now()
	n := 0
	for {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		r, _, err := ivfreader.NewWith(f)
		if err != nil {
			_ = f.Close()
			return err
		}
		for {
			frame, _, err := r.ParseNextFrame()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				_ = f.Close()
				return err
			}
			for _, p := range pk.Packetize(frame, uint32(90000/fps)) {
				if err := w.WriteRTP(p); err != nil {
					_ = f.Close()
					return err
				}
			}
			n++
			select {
			case <-ctx.Done():
				_ = f.Close()
				return nil
			case <-time.After(time.Until(start.Add(time.Duration(n) * time.Second / time.Duration(fps)))):
			}
		}
		_ = f.Close()
	}
}

// SendH264 writes the Annex-B file's access units as RTP (payload type 102, 90 kHz) at fps
// until ctx ends, starting over at the end of the file.
func SendH264(ctx context.Context, path string, fps int, w Writer) error {
	pk := rtp.NewPacketizer(1200, 102, 0x3000+uint32(len(path)), &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
	start := time.Now()
	n := 0
	for {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		r, err := h264reader.NewReader(f)
		if err != nil {
			_ = f.Close()
			return err
		}
		var au []byte
		for {
			nal, err := r.NextNAL()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				_ = f.Close()
				return err
			}
			au = append(au, 0, 0, 0, 1)
			au = append(au, nal.Data...)
			if nal.UnitType != h264reader.NalUnitTypeCodedSliceNonIdr && nal.UnitType != h264reader.NalUnitTypeCodedSliceIdr {
				continue // parameter sets and SEI travel with the next picture
			}
			for _, p := range pk.Packetize(au, uint32(90000/fps)) {
				if err := w.WriteRTP(p); err != nil {
					_ = f.Close()
					return err
				}
			}
			au = au[:0]
			n++
			select {
			case <-ctx.Done():
				_ = f.Close()
				return nil
			case <-time.After(time.Until(start.Add(time.Duration(n) * time.Second / time.Duration(fps)))):
			}
		}
		_ = f.Close()
	}
}

// SendOpus writes the Ogg file's packets as RTP (payload type 111, 48 kHz) every 20 ms
// until ctx ends, starting over at the end of the file.
func SendOpus(ctx context.Context, path string, w Writer) error {
	pk := rtp.NewPacketizer(1200, 111, 0x2000+uint32(len(path)), &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)
	start := time.Now()
	n := 0
	for {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		r, _, err := oggreader.NewWith(f)
		if err != nil {
			_ = f.Close()
			return err
		}
		for {
			payload, hdr, err := r.ParseNextPage()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				_ = f.Close()
				return err
			}
			if _, isHeader := hdr.HeaderType(payload); isHeader || len(payload) == 0 {
				continue
			}
			for _, p := range pk.Packetize(payload, 960) {
				if err := w.WriteRTP(p); err != nil {
					_ = f.Close()
					return err
				}
			}
			n++
			select {
			case <-ctx.Done():
				_ = f.Close()
				return nil
			case <-time.After(time.Until(start.Add(time.Duration(n) * 20 * time.Millisecond))):
			}
		}
		_ = f.Close()
	}
}
