package space

import (
	"math"
	"sort"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/services/sfu/internal/simulcast"
)

// A simulcast track is received once per layer (one remote track per RID) and forwarded to
// each subscriber by its own simulcast.Forwarder, which writes the one layer that
// subscriber's Selector chose (from its subscribe connection's bandwidth estimate) to a local
// track of that subscriber only.

// layerSrc is one received layer.
type layerSrc struct {
	rid   string
	pc    *webrtc.PeerConnection
	ssrc  uint32
	info  simulcast.Layer
	kf    keyframes
	track *track
}

func (l *layerSrc) keyframe() {
	l.kf.request(300*time.Millisecond, func() {
		if err := l.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}}); err == nil {
			l.track.m.PLIs.Inc()
		}
	})
}

// keyframeRID asks the publisher for a keyframe of one layer.
func (t *track) keyframeRID(rid string) {
	if ls := t.layerSet.Load(); ls != nil {
		if l := (*ls)[rid]; l != nil {
			l.keyframe()
		}
	}
}

// layerList is the received layers for the Selector.
func (t *track) layerList() []simulcast.Layer {
	ls := t.layerSet.Load()
	if ls == nil {
		return nil
	}
	out := make([]simulcast.Layer, 0, len(*ls))
	for _, l := range *ls {
		out = append(out, l.info)
	}
	return out
}

// addLayer starts receiving layer rid of a simulcast track (owner goroutine).
func (s *Space) addLayer(t *track, pc *webrtc.PeerConnection, remote *webrtc.TrackRemote) {
	rid := remote.RID()
	info := simulcast.Layer{RID: rid}
	for _, e := range s.cfg.CameraEncodings {
		if e.RID == rid {
			div := e.ScaleResolutionDownBy
			if div < 1 {
				div = 1
			}
			info.Width, info.Height = int(float64(t.info.Width)/div), int(float64(t.info.Height)/div)
			info.Bitrate = uint64(e.MaxBitrate)
		}
	}
	l := &layerSrc{rid: rid, pc: pc, ssrc: uint32(remote.SSRC()), info: info, track: t}
	next := map[string]*layerSrc{}
	if cur := t.layerSet.Load(); cur != nil {
		for k, v := range *cur {
			next[k] = v
		}
	}
	next[rid] = l
	t.layerSet.Store(&next)
	gen := t.gen.Load()
	go func() {
		for {
			pkt, _, err := remote.ReadRTP()
			if err != nil || t.gen.Load() != gen {
				return
			}
			t.m.ForwardedPackets.Inc()
			t.m.ForwardedBytes.Add(float64(len(pkt.Payload)))
			t.layerToTap(rid, pkt)
			if fws := t.fws.Load(); fws != nil {
				for _, f := range *fws {
					_ = f.Write(rid, pkt)
				}
			}
		}
	}()
	l.keyframe()
}

// subscribeLayered gives p its own forwarder of simulcast track t.
func (s *Space) subscribeLayered(p *peer, t *track) (*sender, error) {
	local, err := webrtc.NewTrackLocalStaticRTP(t.codec, t.info.TID, t.info.TID)
	if err != nil {
		return nil, err
	}
	fw, err := simulcast.NewForwarder(simulcast.ForwarderOptions{MimeType: t.codec.MimeType, ClockRate: t.codec.ClockRate,
		Writer: local, RequestKeyframe: t.keyframeRID})
	if err != nil {
		return nil, err
	}
	sel, err := simulcast.NewSelector(simulcast.SelectorOptions{})
	if err != nil {
		return nil, err
	}
	tr, err := p.sub.AddTransceiverFromTrack(local, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, err
	}
	sd := &sender{t: t, s: tr.Sender(), fw: fw, sel: sel}
	// A new track starts on its smallest layer; the next tick shares the estimate anew.
	if rid, _ := sel.Update(t.layerList(), 0, 0, 0, time.Now()); rid != "" {
		fw.SetTarget(rid)
	}
	t.setForwarders(func(list []*simulcast.Forwarder) []*simulcast.Forwarder { return append(list, fw) })
	return sd, nil
}

func (t *track) dropForwarder(fw *simulcast.Forwarder) {
	t.setForwarders(func(list []*simulcast.Forwarder) []*simulcast.Forwarder {
		out := make([]*simulcast.Forwarder, 0, len(list))
		for _, f := range list {
			if f != fw {
				out = append(out, f)
			}
		}
		return out
	})
}

// setForwarders replaces the forwarder list (copy on write: the layer readers load it per
// packet). Owner goroutine only.
func (t *track) setForwarders(f func([]*simulcast.Forwarder) []*simulcast.Forwarder) {
	var cur []*simulcast.Forwarder
	if p := t.fws.Load(); p != nil {
		cur = append(cur, (*p)...)
	}
	next := f(cur)
	t.fws.Store(&next)
}

// bitrate is the subscribe connection's send estimate (0 when unknown).
func (p *peer) bitrate() uint64 {
	if !p.hasEst {
		return 0
	}
	return p.est.Bitrate()
}

// audioReserve is what a subscriber's estimate keeps for each audio track it receives, and
// singleVideoReserve for each single-layer video track (a screenshare or a camera without
// simulcast: the SFU cannot choose their bitrate), before the rest goes to its layered tracks.
const (
	audioReserve       = 64_000
	singleVideoReserve = 500_000
)

// allocateLayers shares a subscribe connection's estimate total among its layered video tracks
// (layers[i] is track i's received layers) and returns, per track, the estimate its Selector
// chooses against. Every track first gets its smallest layer; then the tracks are raised one
// layer at a time, round robin, while the sum of the chosen layers' bitrates fits Headroom of
// what is left after the reserves for audio and single-layer video. So ten cameras on a link
// that carries one do not all take their top layer, and the layers sent keep up with the
// estimate as it grows (the congestion controller raises it only to a multiple of what is
// received: an equal share, each track staying below its next layer, would never let it
// grow). 0 (unknown estimate) stays 0.
func allocateLayers(total uint64, layers [][]simulcast.Layer, singleVideo, audio int) []uint64 {
	out := make([]uint64, len(layers))
	if total == 0 {
		return out
	}
	reserve := uint64(audio)*audioReserve + uint64(singleVideo)*singleVideoReserve
	var budget float64
	if total > reserve {
		budget = float64(total-reserve) * simulcast.Headroom
	}
	sorted := make([][]simulcast.Layer, len(layers))
	pick := make([]int, len(layers))
	var used float64
	for i, ls := range layers {
		sorted[i] = append([]simulcast.Layer(nil), ls...)
		sort.Slice(sorted[i], func(a, b int) bool { return sorted[i][a].Bitrate < sorted[i][b].Bitrate })
		if len(sorted[i]) > 0 {
			used += float64(sorted[i][0].Bitrate)
		}
	}
	for raised := true; raised; {
		raised = false
		for i, ls := range sorted {
			if pick[i]+1 >= len(ls) {
				continue
			}
			more := float64(ls[pick[i]+1].Bitrate) - float64(ls[pick[i]].Bitrate)
			if used+more <= budget {
				used += more
				pick[i]++
				raised = true
			}
		}
	}
	for i, ls := range sorted {
		if len(ls) == 0 {
			continue
		}
		// The estimate at which Choose takes exactly this layer: its bitrate is Headroom of it.
		out[i] = uint64(math.Ceil(float64(ls[pick[i]].Bitrate)/simulcast.Headroom)) + 1
	}
	return out
}

// tickLayers lets every subscriber's selectors follow its share of its bandwidth estimate.
func (s *Space) tickLayers(now time.Time) {
	for _, p := range s.peers {
		if p.gone {
			continue
		}
		// In track id order: the allocation raises the first tracks first, so the same tracks
		// must come first on every tick (map order would move the raise around each time).
		tids := make([]string, 0, len(p.senders))
		for tid := range p.senders {
			tids = append(tids, tid)
		}
		sort.Strings(tids)
		var layered []*sender
		var sets [][]simulcast.Layer
		video, audio := 0, 0
		for _, tid := range tids {
			switch sd := p.senders[tid]; {
			case sd.sel != nil:
				layered = append(layered, sd)
				sets = append(sets, sd.t.layerList())
			case sd.t.info.Type == KindVideo:
				video++
			default:
				audio++
			}
		}
		est := allocateLayers(p.bitrate(), sets, video, audio)
		for i, sd := range layered {
			if rid, changed := sd.sel.Update(sets[i], est[i], 0, 0, now); changed {
				if sd.fw.Target() != "" && sd.fw.Target() != rid {
					s.cfg.Metrics.LayerSwitches.Inc()
				}
				sd.fw.SetTarget(rid)
			}
		}
	}
}
