package speaker

import (
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// AudioLevelURI names the RFC 6464 header extension in SDP (a=extmap).
const AudioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

// RegisterHeaderExtension makes m accept (and offer) the audio level header extension on audio,
// so publishers that offer it (Chrome does) keep sending it after the answer.
func RegisterHeaderExtension(m *webrtc.MediaEngine) error {
	return m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: AudioLevelURI}, webrtc.RTPCodecTypeAudio)
}

// ExtensionID is the id negotiated for the audio level extension in p (an RTPReceiver's
// GetParameters()), ok false when it was not negotiated.
func ExtensionID(p webrtc.RTPParameters) (id uint8, ok bool) {
	for _, e := range p.HeaderExtensions {
		if e.URI == AudioLevelURI && e.ID > 0 && e.ID < 256 {
			return uint8(e.ID), true
		}
	}
	return 0, false
}

// LevelFromPacket reads the audio level of an RTP packet whose extension id is id:
// ErrNoExtension when the packet does not carry it, ErrBadExtension when it is malformed.
func LevelFromPacket(h *rtp.Header, id uint8) (level uint8, voice bool, err error) {
	ext := h.GetExtension(id)
	if ext == nil {
		return 0, false, ErrNoExtension
	}
	return ParseAudioLevel(ext)
}
