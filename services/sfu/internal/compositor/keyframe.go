package compositor

import (
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// decodeStall is how long a decoder may go without its first picture after a keyframe
// before another keyframe is asked for.
const decodeStall = 2 * time.Second

// keyframeWatch decides when a video input needs a keyframe from the sender (the wiring
// turns RequestKeyframe into a PLI): until the first keyframe has arrived (the compositor
// usually joins mid-stream; the decoder can start only at a keyframe) and after a packet
// was lost (sequence gap), at most once per interval; and when decoded says the decoder has
// produced no picture decodeStall after a keyframe (ffmpeg may drop the keyframe it probed
// the stream with, and a browser sends keyframes only when asked), once per decodeStall.
type keyframeWatch struct {
	codec    codecKind
	interval time.Duration
	decoded  func() bool // nil: the decoder is taken to decode from the first keyframe
	keyAt    time.Time   // the last keyframe
	started  bool
	haveSeq  bool
	lastSeq  uint16
	broken   bool // a packet was lost since the last keyframe
	lastAsk  time.Time
}

// observe looks at one packet (in arrival order) and says whether to ask for a keyframe now.
func (k *keyframeWatch) observe(p *rtp.Packet, now time.Time) bool {
	ahead := p.SequenceNumber - k.lastSeq // wraps; ≥ 0x8000 means late or duplicate
	if k.haveSeq && ahead > 1 && ahead < 0x8000 {
		k.broken = true
	}
	if !k.haveSeq || (ahead >= 1 && ahead < 0x8000) {
		k.lastSeq, k.haveSeq = p.SequenceNumber, true
	}
	if isKeyframe(k.codec, p.Payload) {
		k.started, k.broken, k.keyAt = true, false, now
		return false
	}
	if k.started && k.decoded != nil && now.Sub(k.keyAt) >= decodeStall && now.Sub(k.lastAsk) >= decodeStall && !k.decoded() {
		k.lastAsk = now
		return true
	}
	if (!k.started || k.broken) && now.Sub(k.lastAsk) >= k.interval {
		k.lastAsk = now
		return true
	}
	return false
}

// isKeyframe: the first packet of a VP8 keyframe, or an H.264 packet carrying an IDR slice
// or SPS (single NAL, STAP-A or the start of an FU-A).
func isKeyframe(c codecKind, payload []byte) bool {
	switch c {
	case codecVP8:
		var vp8 codecs.VP8Packet
		if _, err := vp8.Unmarshal(payload); err != nil || len(vp8.Payload) == 0 {
			return false
		}
		return vp8.S == 1 && vp8.PID == 0 && vp8.Payload[0]&0x01 == 0
	case codecH264:
		if len(payload) < 2 {
			return false
		}
		switch t := payload[0] & 0x1f; t {
		case 5, 7:
			return true
		case 24: // STAP-A: 2-byte sizes then NALs
			for i := 1; i+2 < len(payload); {
				n := int(payload[i])<<8 | int(payload[i+1])
				if i+2 >= len(payload) {
					break
				}
				if nt := payload[i+2] & 0x1f; nt == 5 || nt == 7 {
					return true
				}
				i += 2 + n
			}
		case 28: // FU-A start of an IDR
			return payload[1]&0x80 != 0 && payload[1]&0x1f == 5
		}
	}
	return false
}
