package space

import (
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
	if rid, _ := sel.Update(t.layerList(), p.bitrate(), 0, 0, time.Now()); rid != "" {
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

// tickLayers lets every subscriber's selectors follow its bandwidth estimate.
func (s *Space) tickLayers(now time.Time) {
	for _, p := range s.peers {
		if p.gone {
			continue
		}
		bps := p.bitrate()
		for _, sd := range p.senders {
			if sd.sel == nil {
				continue
			}
			if rid, changed := sd.sel.Update(sd.t.layerList(), bps, 0, 0, now); changed {
				if sd.fw.Target() != "" && sd.fw.Target() != rid {
					s.cfg.Metrics.LayerSwitches.Inc()
				}
				sd.fw.SetTarget(rid)
			}
		}
	}
}
