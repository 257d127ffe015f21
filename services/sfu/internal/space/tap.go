package space

import (
	"sort"

	"github.com/pion/rtp"
)

// TapSink takes a copy of a track's RTP packets. WriteRTP must not block (it is called
// from the track's forwarding goroutine).
type TapSink interface {
	WriteRTP(p *rtp.Packet) error
}

// TapTrack is a published track as a Tap sees it.
type TapTrack struct {
	ConnectionID string
	DisplayName  string
	Track        Track
	MimeType     string // the codec, e.g. "video/VP8", "audio/opus"
	// Keyframe asks the publisher for a keyframe of what the tap receives (a PLI; at most
	// every 300 ms); nil for audio. Safe from any goroutine. A decoder that starts after
	// the stream's last keyframe needs it: a browser sends keyframes only when asked.
	Keyframe func()
}

// Tap is a hidden subscriber of every track of the space (a broadcast's compositor): it
// is never announced to participants, never counted as one and never in the registry.
// Its methods run on the space's owner goroutine and must not block.
type Tap interface {
	// TrackAdded offers a track; the sink returned (nil: not wanted) receives its packets.
	TrackAdded(t TapTrack) TapSink
	TrackRemoved(connectionID, tid string)
	TrackMuted(connectionID, tid string, muted bool)
	ParticipantLeft(connectionID string)
	// ActiveSpeaker names the connection of the loudest microphone ("" = none).
	ActiveSpeaker(connectionID string)
}

type tapBox struct{ s TapSink }

// tapWrite hands pkt to the track's tap sink, if any.
func (t *track) tapWrite(pkt *rtp.Packet) {
	if b := t.tap.Load(); b != nil {
		_ = b.s.WriteRTP(pkt)
	}
}

// tapping reports whether the track has a tap sink (to skip parsing packets otherwise).
func (t *track) tapping() bool { return t.tap.Load() != nil }

// SetTap makes tap the space's hidden subscriber (nil removes it). Every current track is
// offered to it at once, later ones as they arrive.
func (s *Space) SetTap(tap Tap) {
	s.post(func() {
		s.tap = tap
		for _, t := range s.tracks {
			t.tap.Store(nil)
		}
		if tap == nil {
			return
		}
		for _, t := range s.sortedTracks() {
			s.tapTrack(t)
		}
		if len(s.lastSpk) > 0 {
			tap.ActiveSpeaker(s.lastSpk[0].ConnectionID)
		}
	})
}

// tapTrack offers t to the tap (owner goroutine).
func (s *Space) tapTrack(t *track) {
	if s.tap == nil {
		return
	}
	var kf func()
	if t.info.Type == KindVideo {
		rid := s.tapRID()
		kf = func() {
			if t.layered {
				t.keyframeRID(rid)
			} else {
				t.keyframe()
			}
		}
	}
	sink := s.tap.TrackAdded(TapTrack{ConnectionID: t.owner.m.ConnectionID, DisplayName: t.owner.displayName,
		Track: t.info, MimeType: t.codec.MimeType, Keyframe: kf})
	if sink == nil {
		return
	}
	t.tap.Store(&tapBox{s: sink})
	if kf != nil {
		kf()
	}
}

// tapRID is the simulcast layer the tap takes: the first (smallest) one asked of publishers.
func (s *Space) tapRID() string {
	if len(s.cfg.CameraEncodings) > 0 {
		return s.cfg.CameraEncodings[0].RID
	}
	return ""
}

// sortedTracks are the tracks in their publishers' join order, each publisher's in the
// order their media arrived (a broadcast started in a busy space lays its tiles out in join
// order, not in the order the participants' first packets happened to arrive).
func (s *Space) sortedTracks() []*track {
	out := make([]*track, 0, len(s.tracks))
	for _, t := range s.tracks {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if a, b := out[i].owner.joinSeq, out[j].owner.joinSeq; a != b {
			return a < b
		}
		return out[i].seq < out[j].seq
	})
	return out
}
