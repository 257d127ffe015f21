package space

import (
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/spacecast/spacecast/services/sfu/internal/simulcast"
)

// TapSink takes a copy of a track's RTP packets. WriteRTP must not block (it is called
// from the track's forwarding goroutine), and p is the caller's until WriteRTP returns (copy
// what is kept).
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
	// View, for a simulcast camera (nil otherwise), tells the size in pixels the tap shows
	// the picture at (0, 0: unknown). The tap then gets the smallest layer at least that
	// large among the layers arriving (else the largest arriving), as one stream that
	// changes layer only at the new layer's keyframe. Safe from any goroutine; never blocks.
	View func(width, height int)
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
			t.tapL.Store(nil)
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
	tt := TapTrack{ConnectionID: t.owner.m.ConnectionID, DisplayName: t.owner.displayName,
		Track: t.info, MimeType: t.codec.MimeType}
	var tl *tapLayers
	switch {
	case t.info.Type == KindVideo && t.layered:
		fw, err := simulcast.NewForwarder(simulcast.ForwarderOptions{MimeType: t.codec.MimeType, ClockRate: t.codec.ClockRate,
			Writer: tapWriter{t}, RequestKeyframe: t.keyframeRID})
		if err != nil {
			s.log.Warn("broadcast: simulcast track not tapped", "tid", t.info.TID, "err", err)
			return
		}
		tl = &tapLayers{fw: fw, since: time.Now()}
		tt.Keyframe, tt.View = tl.keyframe(t), tl.setView
	case t.info.Type == KindVideo:
		tt.Keyframe = t.keyframe
	}
	sink := s.tap.TrackAdded(tt)
	if sink == nil {
		return
	}
	t.tap.Store(&tapBox{s: sink})
	if tl != nil {
		t.tapL.Store(tl) // the layer ticks set its target once the view is known
		return
	}
	if tt.Keyframe != nil {
		tt.Keyframe()
	}
}

// tapLayers is how a simulcast camera reaches the tap: one layer at a time, chosen for the
// size the tap shows it at among the layers arriving, through a Forwarder, so that the tap
// sees one continuous stream (sequence numbers and timestamps continue) that changes layer
// only at a keyframe of the new layer: its decoder never gets a mix of two layers.
type tapLayers struct {
	fw   *simulcast.Forwarder
	view atomic.Uint64 // width<<32 | height (0: unknown); any goroutine
	// owned by the space's owner goroutine
	since   time.Time // tapped at
	sel     *simulcast.Selector
	selView uint64 // the view sel was made for
}

// tapViewWait is how long a tapped camera waits for the tap's View before it takes the
// largest layer (a tap that tells no size); the compositor tells it within milliseconds, so
// its decoder's first keyframe is of the layer it needs.
const tapViewWait = time.Second

// tapLayerSilence: a layer that sent nothing for this long is taken as stopped (the
// publisher's bandwidth dropped, or it never sent it) and the tap goes to another.
const tapLayerSilence = time.Second

// tapUnlimited is the bandwidth "estimate" of the tap (it is on this node: every layer fits).
const tapUnlimited = uint64(1) << 62

func (tl *tapLayers) setView(w, h int) {
	if w < 0 || h < 0 {
		w, h = 0, 0
	}
	tl.view.Store(uint64(uint32(w))<<32 | uint64(uint32(h)))
}

func (tl *tapLayers) viewSize() (int, int) {
	v := tl.view.Load()
	return int(v >> 32), int(uint32(v))
}

// keyframe asks for a keyframe of the layer the tap gets (or is about to get).
func (tl *tapLayers) keyframe(t *track) func() {
	return func() {
		rid := tl.fw.Current()
		if rid == "" {
			rid = tl.fw.Target()
		}
		if rid != "" {
			t.keyframeRID(rid)
		}
	}
}

// tapWriter hands the tap forwarder's packets to the track's tap sink.
type tapWriter struct{ t *track }

func (w tapWriter) WriteRTP(p *rtp.Packet) error {
	w.t.tapWrite(p)
	return nil
}

// layerToTap measures a received packet of layer rid and gives it to the tap's forwarder
// (the layer's read goroutine).
func (t *track) layerToTap(rid string, pkt *rtp.Packet) {
	t.meter.Observe(rid, pkt)
	if tl := t.tapL.Load(); tl != nil {
		_ = tl.fw.Write(rid, pkt)
	}
}

// tapChoices are the layers arriving, with their VP8 sizes or else the sizes the announced
// capture size and the layer's scale give.
func (t *track) tapChoices() []simulcast.Layer {
	out := t.meter.LayersWithin(tapLayerSilence)
	ls := t.layerSet.Load()
	for i, l := range out {
		if (l.Width == 0 || l.Height == 0) && ls != nil {
			if src := (*ls)[l.RID]; src != nil {
				out[i].Width, out[i].Height = src.info.Width, src.info.Height
			}
		}
	}
	return out
}

// tickTap keeps the tap of a simulcast track on the layer its view needs (owner goroutine,
// every layer tick). A new view is followed at once; a layer that stops is left at once; a
// larger one that (re)appears is taken after the Selector's hold. Setting the target asks for
// its keyframe.
func (s *Space) tickTap(t *track, tl *tapLayers, now time.Time) {
	v := tl.view.Load()
	if v == 0 && tl.fw.Target() == "" && now.Sub(tl.since) < tapViewWait {
		return
	}
	if tl.sel == nil || v != tl.selView {
		sel, err := simulcast.NewSelector(simulcast.SelectorOptions{})
		if err != nil {
			return
		}
		tl.sel, tl.selView = sel, v
	}
	w, h := tl.viewSize()
	rid, _ := tl.sel.Update(t.tapChoices(), tapUnlimited, w, h, now)
	if rid == "" || rid == tl.fw.Target() {
		return
	}
	s.log.Info("broadcast: camera layer", "tid", t.info.TID, "rid", rid, "from", tl.fw.Target(), "shown_at", fmt.Sprintf("%dx%d", w, h))
	tl.fw.SetTarget(rid)
}

// tickTaps follows every tapped simulcast track's view and layers.
func (s *Space) tickTaps(now time.Time) {
	for _, t := range s.tracks {
		if tl := t.tapL.Load(); tl != nil {
			s.tickTap(t, tl, now)
		}
	}
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
