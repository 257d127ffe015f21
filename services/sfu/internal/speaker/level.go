package speaker

// ParseAudioLevel decodes the payload of an RFC 6464 client-to-mixer audio level header
// extension (urn:ietf:params:rtp-hdrext:ssrc-audio-level): one byte, the voice activity flag in
// the top bit and the level in the low 7 bits, in -dBov (0 is the loudest, 127 digital silence).
// The payload is one byte in both the one-byte and the two-byte header forms; anything else is
// ErrBadExtension.
func ParseAudioLevel(ext []byte) (level uint8, voice bool, err error) {
	if len(ext) != 1 {
		return 0, false, ErrBadExtension
	}
	return ext[0] & 0x7f, ext[0]&0x80 != 0, nil
}
