package compositor

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/h264writer"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// RTPWriter takes a track's RTP packets, as read from the SFU. WriteRTP never blocks: it
// copies the packet into a bounded queue (a full queue drops it) and returns.
type RTPWriter interface {
	WriteRTP(p *rtp.Packet) error
}

var (
	_ RTPWriter = (*input)(nil)
	_ rtpSink   = (*ivfwriter.IVFWriter)(nil)
	_ rtpSink   = (*h264writer.H264Writer)(nil)
	_ rtpSink   = (*oggwriter.OggWriter)(nil)
)

// rtpSink turns RTP packets into a container stream ffmpeg reads on stdin.
type rtpSink interface {
	WriteRTP(p *rtp.Packet) error
}

// input is one decoder ffmpeg: RTP in (depacketised into IVF, Annex-B H.264 or Ogg/Opus on
// the child's stdin), raw frames or PCM out on its stdout, read by one goroutine that hands
// them to the compositor's owner goroutine.
type input struct {
	id      string
	video   bool
	log     *slog.Logger
	proc    *proc
	pkts    chan *rtp.Packet
	quit    chan struct{}
	once    sync.Once
	dropped atomic.Int64
	// pictured: the decoder produced a picture (until then keyframes are asked for).
	pictured atomic.Bool
	free     chan *frame // frame buffers the owner is done with
	wg       sync.WaitGroup
	// boxW×boxH is what a video decoder scales the picture to fit.
	boxW, boxH int
}

const (
	packetQueue      = 1024
	keyframeInterval = 500 * time.Millisecond // between keyframe requests for one track
)

func (in *input) WriteRTP(p *rtp.Packet) error {
	if p == nil {
		return nil
	}
	select {
	case <-in.quit:
		return ErrClosed
	default:
	}
	select {
	case in.pkts <- p.Clone():
	default:
		if in.dropped.Add(1)%100 == 1 {
			in.log.Warn("compositor: input queue full, dropping packets", "id", in.id, "dropped", in.dropped.Load())
		}
	}
	return nil
}

// stop ends the child and the input's goroutines; safe to call more than once.
func (in *input) stop() {
	in.once.Do(func() {
		close(in.quit)
		in.proc.stop(0) // decoders need no flush: their output is no longer wanted
		in.wg.Wait()
	})
}

// feed writes queued packets through sink to the child's stdin until quit. For video, kw
// (after the queue, so drops count as losses) says when to call askKeyframe.
func (in *input) feed(sink rtpSink, kw *keyframeWatch, askKeyframe func(string)) {
	defer in.wg.Done()
	for {
		select {
		case <-in.quit:
			return
		case p := <-in.pkts:
			if kw != nil && askKeyframe != nil && kw.observe(p, time.Now()) {
				askKeyframe(in.id)
			}
			if err := sink.WriteRTP(p); err != nil {
				select {
				case <-in.quit:
				default:
					in.log.Warn("compositor: decoder input", "id", in.id, "err", err, "ffmpeg", in.proc.stderr.String())
				}
				// keep draining so WriteRTP callers never see back-pressure
				for {
					select {
					case <-in.quit:
						return
					case <-in.pkts:
					}
				}
			}
		}
	}
}

type codecKind int

const (
	codecVP8 codecKind = iota + 1
	codecH264
)

func parseCodec(s string) (codecKind, error) {
	switch strings.ToLower(strings.TrimPrefix(strings.ToLower(s), "video/")) {
	case "vp8":
		return codecVP8, nil
	case "h264", "avc":
		return codecH264, nil
	}
	return 0, fmt.Errorf("%w: %q (VP8 or H264)", ErrUnsupportedCodec, s)
}

// videoFrameMsg is a decoded frame handed to the owner goroutine.
type videoFrameMsg struct {
	in *input
	f  *frame
}

type pcmMsg struct {
	in  *input
	pcm []int16 // interleaved stereo
}

// startVideo starts a decoder for codec that scales to fit boxW×boxH (aspect preserved)
// and sends frames on out until quit.
func startVideo(bin, id string, codec codecKind, boxW, boxH int, out chan<- videoFrameMsg, askKeyframe func(string), log *slog.Logger) (*input, error) {
	demux := "ivf"
	if codec == codecH264 {
		demux = "h264"
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		"-fflags", "nobuffer", "-flags", "low_delay", "-probesize", "32", "-analyzeduration", "0", "-fpsprobesize", "0",
		"-f", demux, "-i", "pipe:0", "-an",
		"-vf", fmt.Sprintf("scale=w=%d:h=%d:force_original_aspect_ratio=decrease:force_divisible_by=2:flags=fast_bilinear,format=yuv420p", boxW, boxH),
		"-fps_mode", "passthrough", "-f", "yuv4mpegpipe", "pipe:1"}
	p, err := startProc(bin, args)
	if err != nil {
		return nil, err
	}
	in := &input{id: id, video: true, log: log, proc: p, pkts: make(chan *rtp.Packet, packetQueue),
		quit: make(chan struct{}), free: make(chan *frame, 3), boxW: boxW, boxH: boxH}
	var sink rtpSink
	if codec == codecH264 {
		sink = h264writer.NewWith(p.stdin)
	} else {
		w, err := ivfwriter.NewWith(p.stdin)
		if err != nil {
			p.stop(0)
			return nil, fmt.Errorf("%w: %v", ErrFFmpeg, err)
		}
		sink = w
	}
	in.wg.Add(2)
	go in.feed(sink, &keyframeWatch{codec: codec, interval: keyframeInterval, decoded: in.pictured.Load}, askKeyframe)
	go in.readY4M(out)
	return in, nil
}

// readY4M reads yuv4mpegpipe output: one header line with the size, then "FRAME\n" + a
// yuv420p picture per frame.
func (in *input) readY4M(out chan<- videoFrameMsg) {
	defer in.wg.Done()
	r := bufio.NewReaderSize(in.proc.stdout, 1<<16)
	header, err := r.ReadString('\n')
	if err != nil {
		in.ended(err)
		return
	}
	w, h, err := parseY4MHeader(header)
	if err != nil {
		in.ended(err)
		return
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			in.ended(err)
			return
		}
		if !bytes.HasPrefix(line, []byte("FRAME")) {
			in.ended(fmt.Errorf("y4m: unexpected %q", line))
			return
		}
		var f *frame
		select {
		case f = <-in.free:
		default:
			f = newFrame(w, h)
		}
		if _, err := io.ReadFull(r, f.Buf); err != nil {
			in.ended(err)
			return
		}
		in.pictured.Store(true)
		select {
		case out <- videoFrameMsg{in: in, f: f}:
		case <-in.quit:
			return
		}
	}
}

func (in *input) ended(err error) {
	select {
	case <-in.quit:
	default:
		in.log.Warn("compositor: decoder ended", "id", in.id, "err", err, "ffmpeg", in.proc.stderr.String())
	}
}

func parseY4MHeader(s string) (w, h int, err error) {
	if !strings.HasPrefix(s, "YUV4MPEG2 ") {
		return 0, 0, fmt.Errorf("y4m: bad header %q", s)
	}
	for _, f := range strings.Fields(s)[1:] {
		switch f[0] {
		case 'W':
			w, err = strconv.Atoi(f[1:])
		case 'H':
			h, err = strconv.Atoi(f[1:])
		case 'C':
			if !strings.HasPrefix(f, "C420") {
				return 0, 0, fmt.Errorf("y4m: colourspace %s, want 420", f)
			}
		}
		if err != nil {
			return 0, 0, fmt.Errorf("y4m: bad header %q", s)
		}
	}
	if w <= 0 || h <= 0 || w%2 != 0 || h%2 != 0 {
		return 0, 0, fmt.Errorf("y4m: size %dx%d", w, h)
	}
	return w, h, nil
}

// audio: 48 kHz stereo s16le
const (
	sampleRate   = 48000
	chunkSamples = 960 // 20 ms per channel
)

// startAudio starts an Opus decoder that sends 20 ms PCM chunks on out until quit.
func startAudio(bin, id string, out chan<- pcmMsg, log *slog.Logger) (*input, error) {
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		"-fflags", "nobuffer", "-probesize", "4096", "-analyzeduration", "0",
		"-f", "ogg", "-i", "pipe:0", "-vn",
		"-f", "s16le", "-ac", "2", "-ar", strconv.Itoa(sampleRate), "-flush_packets", "1", "pipe:1"}
	p, err := startProc(bin, args)
	if err != nil {
		return nil, err
	}
	in := &input{id: id, log: log, proc: p, pkts: make(chan *rtp.Packet, packetQueue), quit: make(chan struct{})}
	sink, err := oggwriter.NewWith(p.stdin, sampleRate, 2)
	if err != nil {
		p.stop(0)
		return nil, fmt.Errorf("%w: %v", ErrFFmpeg, err)
	}
	in.wg.Add(2)
	go in.feed(sink, nil, nil)
	go func() {
		defer in.wg.Done()
		buf := make([]byte, chunkSamples*4)
		for {
			n, err := io.ReadFull(in.proc.stdout, buf)
			if n > 0 {
				pcm := make([]int16, n/2)
				for i := range pcm {
					pcm[i] = int16(uint16(buf[2*i]) | uint16(buf[2*i+1])<<8)
				}
				select {
				case out <- pcmMsg{in: in, pcm: pcm}:
				case <-in.quit:
					return
				}
			}
			if err != nil {
				in.ended(err)
				return
			}
		}
	}()
	return in, nil
}
