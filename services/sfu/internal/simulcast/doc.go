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
// The Mux Spaces SDK never tells the server which layer it wants nor how large a video is
// rendered (MUX-SPACES-PROTOCOL.md §6.4), so over that protocol the rendered size is unknown
// (0, 0) and the choice follows the bandwidth estimate alone.
package simulcast
