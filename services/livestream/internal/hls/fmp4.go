package hls

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
)

// The fMP4 (CMAF) side of the Segmenter: an init section per epoch and, per segment, parts
// (moof+mdat fragments) that are written as files of their own and appended to the segment's
// file. The boxes are written by mediacommon's fmp4 package.

const (
	videoTrackID   = 1
	audioTrackID   = 2
	videoTimescale = 90000
	aacFrameLen    = 1024 // samples per AAC frame
)

// trackConfig is what an init section needs, learnt from the packets themselves.
type trackConfig struct {
	sps, pps []byte
	audio    *mpeg4audio.AudioSpecificConfig
}

// splitVideo returns the NAL units of an Annex-B access unit without access unit delimiters
// and parameter sets (those go in the init section), and the SPS/PPS it carried.
func splitVideo(data []byte) (nalus [][]byte, sps, pps []byte, err error) {
	var au h264.AnnexB
	if err := au.Unmarshal(data); err != nil {
		return nil, nil, nil, fmt.Errorf("hls: video access unit: %w", err)
	}
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter:
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		default:
			nalus = append(nalus, n)
		}
	}
	return nalus, sps, pps, nil
}

// parseADTS returns the raw AAC frame of an ADTS packet and its configuration.
func parseADTS(data []byte) ([]byte, mpeg4audio.AudioSpecificConfig, error) {
	var ps mpeg4audio.ADTSPackets
	if err := ps.Unmarshal(data); err != nil || len(ps) != 1 {
		return nil, mpeg4audio.AudioSpecificConfig{}, fmt.Errorf("hls: audio frame is not one ADTS packet: %v", err)
	}
	p := ps[0]
	return p.AU, mpeg4audio.AudioSpecificConfig{Type: p.Type, SampleRate: p.SampleRate, ChannelConfig: p.ChannelConfig, ChannelCount: p.ChannelCount}, nil
}

// learn fills cfg from a packet (the first keyframe's SPS/PPS, the first ADTS header).
func (cfg *trackConfig) learn(p flv.Packet) {
	switch p.Kind {
	case flv.Video:
		if cfg.sps == nil && p.Keyframe {
			if _, sps, pps, err := splitVideo(p.Data); err == nil && sps != nil && pps != nil {
				cfg.sps, cfg.pps = bytes.Clone(sps), bytes.Clone(pps) // p.Data is the caller's
			}
		}
	case flv.Audio:
		if cfg.audio == nil {
			if _, c, err := parseADTS(p.Data); err == nil {
				cfg.audio = &c
			}
		}
	}
}

// marshalInit writes the init section of the tracks that are on.
func marshalInit(cfg trackConfig, video, audio bool) ([]byte, error) {
	var in fmp4.Init
	if video {
		if cfg.sps == nil {
			return nil, errors.New("hls: no SPS/PPS seen before the first keyframe")
		}
		in.Tracks = append(in.Tracks, &fmp4.InitTrack{ID: videoTrackID, TimeScale: videoTimescale,
			Codec: &codecs.H264{SPS: cfg.sps, PPS: cfg.pps}})
	}
	if audio {
		if cfg.audio == nil {
			return nil, errors.New("hls: no AAC configuration seen")
		}
		in.Tracks = append(in.Tracks, &fmp4.InitTrack{ID: audioTrackID, TimeScale: uint32(cfg.audio.SampleRate),
			Codec: &codecs.MPEG4Audio{Config: *cfg.audio}})
	}
	var buf seekablebuffer.Buffer
	if err := in.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("hls: init section: %w", err)
	}
	return buf.Bytes(), nil
}

func ticks(d time.Duration, scale int64) int64 {
	return int64((d + tsOffset) / time.Microsecond * time.Duration(scale) / 1e6)
}

// pendingVideo is a video sample whose duration is known only when the next one arrives.
type pendingVideo struct {
	dts, pts time.Duration
	key      bool
	avcc     []byte
}

// partBuilder collects the samples of the part being built.
type partBuilder struct {
	video      []*fmp4.Sample
	videoBase  int64
	audio      []*fmp4.Sample
	audioBase  int64
	audioRate  int64
	firstKey   bool
	pend       *pendingVideo
	lastVidDur int64 // ticks, for the last sample of a stream
}

func (b *partBuilder) empty() bool { return len(b.video) == 0 && len(b.audio) == 0 }

// addVideo queues a video packet (the previous one gets its duration from it).
func (b *partBuilder) addVideo(p flv.Packet) error {
	nalus, _, _, err := splitVideo(p.Data)
	if err != nil {
		return err
	}
	avcc, err := h264.AVCC(nalus).Marshal()
	if err != nil {
		return fmt.Errorf("hls: video access unit: %w", err)
	}
	b.completeVideo(p.DTS)
	b.pend = &pendingVideo{dts: p.DTS, pts: p.PTS, key: p.Keyframe, avcc: avcc}
	return nil
}

// completeVideo moves the pending video sample into the part, ending at next (or, when next is
// negative, lasting as long as the previous sample).
func (b *partBuilder) completeVideo(next time.Duration) {
	pv := b.pend
	if pv == nil {
		return
	}
	b.pend = nil
	dur := b.lastVidDur
	if next >= 0 {
		dur = max(ticks(next, videoTimescale)-ticks(pv.dts, videoTimescale), 0)
		b.lastVidDur = dur
	}
	if len(b.video) == 0 {
		b.videoBase = ticks(pv.dts, videoTimescale)
		b.firstKey = pv.key
	}
	b.video = append(b.video, &fmp4.Sample{Duration: uint32(dur),
		PTSOffset:       int32(ticks(pv.pts, videoTimescale) - ticks(pv.dts, videoTimescale)),
		IsNonSyncSample: !pv.key, Payload: pv.avcc})
}

func (b *partBuilder) addAudio(p flv.Packet) error {
	au, c, err := parseADTS(p.Data)
	if err != nil {
		return err
	}
	if len(b.audio) == 0 {
		b.audioRate = int64(c.SampleRate)
		b.audioBase = ticks(p.DTS, b.audioRate)
	}
	b.audio = append(b.audio, &fmp4.Sample{Duration: aacFrameLen, Payload: bytes.Clone(au)}) // au is in the caller's p.Data
	return nil
}

// marshal writes the part (moof+mdat) and resets the builder for the next one.
func (b *partBuilder) marshal(seq uint32) ([]byte, error) {
	pt := fmp4.Part{SequenceNumber: seq}
	if len(b.video) > 0 {
		pt.Tracks = append(pt.Tracks, &fmp4.PartTrack{ID: videoTrackID, BaseTime: uint64(b.videoBase), Samples: b.video})
	}
	if len(b.audio) > 0 {
		pt.Tracks = append(pt.Tracks, &fmp4.PartTrack{ID: audioTrackID, BaseTime: uint64(b.audioBase), Samples: b.audio})
	}
	var buf seekablebuffer.Buffer
	if err := pt.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("hls: part: %w", err)
	}
	b.video, b.audio, b.firstKey = nil, nil, false
	return buf.Bytes(), nil
}
