package simulcast

import "strings"

// MIME types with keyframe detection (the same strings as pion's webrtc.MimeTypeVP8/H264).
const (
	MimeTypeVP8  = "video/VP8"
	MimeTypeH264 = "video/H264"
)

// KeyframeFunc reports whether an RTP payload is the first packet of a keyframe.
type KeyframeFunc func(payload []byte) bool

// KeyframeDetector returns the keyframe test for a codec's MIME type (case-insensitive), or
// nil if the codec is not supported.
func KeyframeDetector(mimeType string) KeyframeFunc {
	switch {
	case strings.EqualFold(mimeType, MimeTypeVP8):
		return IsVP8Keyframe
	case strings.EqualFold(mimeType, MimeTypeH264):
		return IsH264Keyframe
	}
	return nil
}

// IsVP8Keyframe reports whether a VP8 RTP payload (RFC 7741) starts a key frame: the payload
// descriptor has S=1 and partition index 0, and the VP8 payload header that follows has the
// inverse key frame flag P=0 and the key frame start code 9d 01 2a.
func IsVP8Keyframe(payload []byte) bool {
	if len(payload) < 1 {
		return false
	}
	d := payload[0]
	if d&0x10 == 0 || d&0x07 != 0 { // S: start of a partition; PID: partition 0
		return false
	}
	i := 1
	if d&0x80 != 0 { // X: extended control bits follow
		if len(payload) < 2 {
			return false
		}
		x := payload[1]
		i = 2
		if x&0x80 != 0 { // I: picture id, 7 or 15 bits (M)
			if len(payload) <= i {
				return false
			}
			if payload[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID/Y/KEYIDX
			i++
		}
	}
	// VP8 payload header (3 bytes) then the key frame's start code (RFC 6386 9.1).
	if len(payload) < i+6 {
		return false
	}
	h := payload[i:]
	return h[0]&0x01 == 0 && h[3] == 0x9d && h[4] == 0x01 && h[5] == 0x2a
}

// H.264 NAL unit types (RFC 6184 and ITU-T H.264 table 7-1).
const (
	naluIDR   = 5
	naluSPS   = 7
	naluSTAPA = 24
	naluFUA   = 28
)

// IsH264Keyframe reports whether an H.264 RTP payload (RFC 6184, packetization mode 0 or 1)
// starts a keyframe: a single NAL unit that is an SPS or an IDR slice, a STAP-A aggregating
// one, or the first fragment (S bit) of an FU-A carrying one. Encoders send the SPS and PPS
// just before the IDR, so switching at the SPS delivers the whole keyframe.
func IsH264Keyframe(payload []byte) bool {
	if len(payload) < 1 {
		return false
	}
	switch t := payload[0] & 0x1f; t {
	case naluIDR, naluSPS:
		return true
	case naluSTAPA:
		for i := 1; i+2 < len(payload); {
			n := int(payload[i])<<8 | int(payload[i+1])
			i += 2
			if n == 0 || i+n > len(payload) {
				return false
			}
			if nt := payload[i] & 0x1f; nt == naluIDR || nt == naluSPS {
				return true
			}
			i += n
		}
		return false
	case naluFUA:
		if len(payload) < 2 {
			return false
		}
		fu := payload[1]
		nt := fu & 0x1f
		return fu&0x80 != 0 && (nt == naluIDR || nt == naluSPS)
	}
	return false
}
