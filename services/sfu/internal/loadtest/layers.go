package loadtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/services/sfu/internal/space"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

// Simulcast publishers send synthetic VP8 frames that carry their layer: bytes
// markerOffset and markerOffset+1 of every frame are 'L' and the layer's index (0 = the
// smallest), so a subscriber sees which layer the SFU forwards to it (the forwarder rewrites
// the RTP header, not the payload).
const (
	markerOffset = 10 // after a key frame's 10-byte header (tag, start code, size)
	markerByte   = 'L'
	noLayer      = -1
)

// layerSpec is one simulcast layer the publisher sends.
type layerSpec struct {
	rid           string
	bitrate       int // bits/s
	width, height int // announced in its key frames
}

// simulcastLayers turns the joined message's camera encodings into what a publisher sends:
// each layer at its max_bitrate (at most topBitrate), a 1280x720 camera scaled down by
// scale_resolution_down_by; the encodings' order (smallest first in Spacecast) is kept.
func simulcastLayers(encs []space.Encoding, topBitrate int) ([]layerSpec, error) {
	if len(encs) < 2 {
		return nil, fmt.Errorf("%w: the SFU offered %d camera encodings", ErrNoSimulcast, len(encs))
	}
	out := make([]layerSpec, 0, len(encs))
	for _, e := range encs {
		scale := e.ScaleResolutionDownBy
		if scale < 1 {
			scale = 1
		}
		br := e.MaxBitrate
		if br <= 0 || br > topBitrate {
			br = topBitrate
		}
		out = append(out, layerSpec{rid: e.RID, bitrate: br, width: int(1280 / scale), height: int(720 / scale)})
	}
	return out, nil
}

// layerFrame builds one synthetic VP8 frame of layer index li from noise.
func layerFrame(noise []byte, size, li, width, height int, key bool) []byte {
	size = max(size, markerOffset+2)
	f := make([]byte, size)
	copy(f, noise[:min(size, len(noise))])
	if key {
		copy(f, []byte{0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, byte(width), byte(width>>8) & 0x3f, byte(height), byte(height>>8) & 0x3f})
	} else {
		f[0] = 0x11
	}
	f[markerOffset], f[markerOffset+1] = markerByte, byte(li)
	return f
}

// vp8FrameStart returns the VP8 payload of an RTP payload that starts a frame (RFC 7741
// descriptor S=1, partition 0); ok false otherwise.
func vp8FrameStart(payload []byte) ([]byte, bool) {
	if len(payload) < 1 {
		return nil, false
	}
	d := payload[0]
	if d&0x10 == 0 || d&0x07 != 0 {
		return nil, false
	}
	i := 1
	if d&0x80 != 0 {
		if len(payload) < 2 {
			return nil, false
		}
		x := payload[1]
		i = 2
		if x&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(payload) <= i {
				return nil, false
			}
			if payload[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T/K: TID/KEYIDX
			i++
		}
	}
	if len(payload) <= i {
		return nil, false
	}
	return payload[i:], true
}

// frameLayer returns the layer marked in a frame-starting VP8 RTP payload, or noLayer.
func frameLayer(payload []byte) int {
	f, ok := vp8FrameStart(payload)
	if !ok || len(f) < markerOffset+2 || f[markerOffset] != markerByte {
		return noLayer
	}
	return int(f[markerOffset+1])
}

// layeredVideo is a simulcast camera: one TrackLocalStaticRTP per layer.
type layeredVideo struct {
	specs  []layerSpec
	tracks []*webrtc.TrackLocalStaticRTP
}

func newLayeredVideo(specs []layerSpec) (*layeredVideo, error) {
	v := &layeredVideo{specs: specs}
	id, stream := "video", spacesclient.NewTrackID()
	for _, s := range specs {
		t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, id, stream,
			webrtc.WithRTPStreamID(s.rid))
		if err != nil {
			return nil, err
		}
		v.tracks = append(v.tracks, t)
	}
	return v, nil
}

func (v *layeredVideo) locals() []webrtc.TrackLocal {
	out := make([]webrtc.TrackLocal, len(v.tracks))
	for i, t := range v.tracks {
		out[i] = t
	}
	return out
}

// run sends every layer at 30 fps (key frame every gop frames and on a PLI of that layer)
// until ctx ends, with the mid and rid header extensions pub's negotiation gave.
func (v *layeredVideo) run(ctx context.Context, pub *spacesclient.Publication, gop int) error {
	var midID, ridID uint8
	for _, e := range pub.Sender.GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			midID = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(e.ID)
		}
	}
	if midID == 0 || ridID == 0 {
		return fmt.Errorf("%w: mid/rid header extensions not negotiated", ErrNoSimulcast)
	}
	errs := make(chan error, len(v.specs))
	for li, s := range v.specs {
		go func() { errs <- v.sendLayer(ctx, li, s, pub.Mid, midID, ridID, pub.LayerKeyframeRequests[s.rid], gop) }()
	}
	var first error
	for range v.specs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (v *layeredVideo) sendLayer(ctx context.Context, li int, s layerSpec, mid string, midID, ridID uint8, keyframes <-chan struct{}, gop int) error {
	const fps = 30
	frameBytes := s.bitrate / 8 / fps
	noise := make([]byte, frameBytes*3+markerOffset+2)
	_, _ = rand.Read(noise)
	pk := rtp.NewPacketizer(1200, 96, 0, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewRandomSequencer(), 90000)
	t := time.NewTicker(time.Second / fps)
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
			size *= 3
		}
		for _, p := range pk.Packetize(layerFrame(noise, size, li, s.width, s.height, key), 90000/fps) {
			if err := p.Header.SetExtension(midID, []byte(mid)); err != nil {
				return err
			}
			if err := p.Header.SetExtension(ridID, []byte(s.rid)); err != nil {
				return err
			}
			if err := v.tracks[li].WriteRTP(p); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
