// Package synth produces synthetic media for tests and the load tool: frames shaped like
// VP8 or H.264 (a real keyframe flag, arbitrary content) and Opus-sized audio packets, sent
// through pion's packetizers at a target bitrate, with a keyframe whenever one is requested.
package synth

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// Video sends frames on track at fps with about bitrate bits/s until ctx ends. A value on
// keyframes makes the next frame a keyframe (as an encoder answers PLI); every gop frames
// there is one anyway.
func Video(ctx context.Context, track *webrtc.TrackLocalStaticSample, bitrate, fps, gop int, keyframes <-chan struct{}) error {
	h264 := track.Codec().MimeType == webrtc.MimeTypeH264
	frameBytes := bitrate / 8 / fps
	noise := make([]byte, frameBytes*4)
	_, _ = rand.Read(noise)
	t := time.NewTicker(time.Second / time.Duration(fps))
	defer t.Stop()
	for n := 0; ; n++ {
		key := n%gop == 0
		select {
		case <-keyframes:
			key = true
		default:
		}
		size := frameBytes
		if key {
			size = frameBytes * 3
		}
		var frame []byte
		if h264 {
			frame = h264Frame(noise[:size], key)
		} else {
			frame = vp8Frame(noise[:size], key)
		}
		if err := track.WriteSample(media.Sample{Data: frame, Duration: time.Second / time.Duration(fps)}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// vp8Frame: frame tag bit 0 is 0 for a keyframe; keyframes carry the start code and size.
func vp8Frame(body []byte, key bool) []byte {
	f := make([]byte, len(body))
	copy(f, body)
	if key {
		copy(f, []byte{0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01})
	} else {
		f[0] = 0x11
	}
	return f
}

// h264Frame: Annex-B; a keyframe is SPS, PPS and an IDR slice, otherwise one non-IDR slice.
func h264Frame(body []byte, key bool) []byte {
	sc := []byte{0, 0, 0, 1}
	var f []byte
	if key {
		f = append(f, sc...)
		f = append(f, 0x67, 0x42, 0xe0, 0x1f, 0x8c, 0x8d, 0x40) // SPS
		f = append(f, sc...)
		f = append(f, 0x68, 0xce, 0x3c, 0x80) // PPS
		f = append(f, sc...)
		f = append(f, 0x65)
	} else {
		f = append(f, sc...)
		f = append(f, 0x41)
	}
	for _, b := range body {
		if b == 0 {
			b = 1 // never a start code inside
		}
		f = append(f, b)
	}
	return f
}

// Audio sends 20 ms Opus-sized packets (about 48 kbit/s) until ctx ends.
func Audio(ctx context.Context, track *webrtc.TrackLocalStaticSample) error {
	pkt := make([]byte, 120)
	_, _ = rand.Read(pkt)
	pkt[0] = 0x78 // TOC: SILK/CELT hybrid-like config, mono, one frame
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if err := track.WriteSample(media.Sample{Data: pkt, Duration: 20 * time.Millisecond}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// IsKeyframeStart reports whether an RTP payload starts a keyframe (VP8 or H.264).
func IsKeyframeStart(mime string, payload []byte) bool {
	if len(payload) < 1 {
		return false
	}
	switch mime {
	case webrtc.MimeTypeVP8:
		// Payload descriptor: X bit extends it; S bit and partition 0 start a frame.
		i := 1
		if payload[0]&0x80 != 0 {
			if len(payload) < 2 {
				return false
			}
			x := payload[1]
			i = 2
			if x&0x80 != 0 { // I: picture id
				if len(payload) <= i {
					return false
				}
				if payload[i]&0x80 != 0 {
					i += 2
				} else {
					i++
				}
			}
			if x&0x40 != 0 { // L
				i++
			}
			if x&0x30 != 0 { // T or K
				i++
			}
		}
		if payload[0]&0x10 == 0 || payload[0]&0x07 != 0 || len(payload) <= i {
			return false
		}
		return payload[i]&0x01 == 0
	case webrtc.MimeTypeH264:
		nal := payload[0] & 0x1f
		switch nal {
		case 5, 7:
			return true
		case 24: // STAP-A
			if len(payload) > 3 {
				t := payload[3] & 0x1f
				return t == 7 || t == 5
			}
		case 28: // FU-A start of an IDR
			return len(payload) > 1 && payload[1]&0x80 != 0 && payload[1]&0x1f == 5
		}
	}
	return false
}
