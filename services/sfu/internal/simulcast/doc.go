// Package simulcast forwards one layer of a simulcast publication to each subscriber.
//
// A browser publishing with RID simulcast (the Mux Spaces SDK's q/h/f camera encodings) sends
// each layer on its own SSRC, with its own sequence numbers and timestamps; pion gives the SFU
// one remote track per RID. For every subscriber of such a track the SFU keeps:
//
//   - a Forwarder, which all layers' packets are written to and which writes exactly one of them
//     to the subscriber's *webrtc.TrackLocalStaticRTP, renumbered into one continuous stream, and
//     switches layers only at a keyframe of the new layer (IsVP8Keyframe, IsH264Keyframe),
//     asking the publisher for one through its RequestKeyframe callback (a PLI);
//   - a Selector (hysteresis over Choose), which picks the layer from the subscriber's bandwidth
//     estimate and, when known, its rendered size: the smallest layer covering the rendered size
//     that fits Headroom of the estimate;
//   - the estimate itself from RegisterBWE: pion's send-side GCC on the subscriber's peer
//     connection, fed by the browser's transport-wide-cc feedback.
//
// Goroutines: Forwarder is safe for the concurrent use it gets (Write from each layer's read
// goroutine, SetTarget from the space owner). Selector is not safe for concurrent use and
// belongs to the space owner, which calls Update on a timer with Estimate.Bitrate and then
// Forwarder.SetTarget when it changed. BWE is safe for concurrent use.
//
// Wiring in the SFU (what the tests in this package do with pion):
//
//  1. Engine: after webrtc.RegisterDefaultInterceptors, RegisterBWE(m, ir, BWEOptions{}) on the
//     same MediaEngine and registry. Every connection of the API gets an estimator; Take(pc)
//     right after NewPeerConnection for a subscriber's connection (the others are dropped when
//     their connection closes).
//  2. Publisher: pion calls OnTrack once per RID of a simulcast video track (TrackRemote.RID());
//     each track's reader goroutine hands every packet to the Forwarder of every subscriber of
//     that publication (the same *rtp.Packet to all: Write only reads it). A track without RIDs
//     needs no Forwarder: write it to the subscribers' tracks as it is.
//  3. Subscriber: one *webrtc.TrackLocalStaticRTP (one m-line, whatever the layer count) as the
//     Forwarder's Writer; RequestKeyframe(rid) writes a PLI for that RID's TrackRemote.SSRC() to
//     the publisher's connection; a PLI/FIR the subscriber sends (read from its RTPSender) asks
//     for a keyframe of Forwarder.Current().
//  4. Owner loop: every 100–500 ms Selector.Update(layers, estimate.Bitrate(), w, h, now) and,
//     when changed, Forwarder.SetTarget. The layers come from a Meter per publication that the
//     track readers Observe each packet into (bitrate per layer, VP8 size from key frames; a
//     layer the publisher stopped sending drops out), or from what the SFU sent in
//     joined.simulcast (max_bitrate, scale_resolution_down_by).
//  5. Metrics: ForwarderStats (Switches, Packets, Bytes, KeyframeRequests).
//
// The Mux Spaces SDK never tells the server which layer it wants nor how large a video is
// rendered (MUX-SPACES-PROTOCOL.md §6.4), so over that protocol the rendered size is unknown
// (0, 0) and the choice follows the bandwidth estimate alone.
package simulcast
