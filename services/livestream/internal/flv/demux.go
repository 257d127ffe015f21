package flv

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Kind tells a video packet from an audio one.
type Kind uint8

// Packet kinds.
const (
	Video Kind = 1
	Audio Kind = 2
)

func (k Kind) String() string {
	switch k {
	case Video:
		return "video"
	case Audio:
		return "audio"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Packet is one access unit ready for MPEG-TS.
type Packet struct {
	Kind     Kind
	DTS, PTS time.Duration // PTS = DTS + composition time
	// Keyframe: video: the access unit holds an IDR slice or the FLV frame type is key; audio: always true.
	Keyframe bool
	// Data: video: an Annex-B access unit (4-byte start codes), access unit delimiter first and
	// SPS/PPS before every keyframe; audio: one AAC frame with a 7-byte ADTS header.
	// A Demuxer's packets share its buffers: Data is valid until the next Push (copy what you
	// keep longer).
	Data []byte
}

// VideoInfo describes the H.264 stream from its SPS.
type VideoInfo struct {
	Width, Height  int
	Profile, Level uint8
}

// AudioInfo describes the AAC stream from its AudioSpecificConfig.
type AudioInfo struct {
	ObjectType int // 2 = AAC LC, 5 = HE-AAC (SBR), 29 = HE-AACv2 (PS)
	SampleRate int
	Channels   int
}

// Demuxer turns FLV audio/video tags (H.264 + AAC) into Packets. Not safe for concurrent use.
type Demuxer struct {
	// video
	videoConfig bool
	nalLenSize  int
	spsPPS      []byte // Annex-B SPS+PPS from the sequence header
	videoInfo   VideoInfo
	videoInfoOK bool
	nals        [][]byte // scratch
	vbuf        []byte   // the last video packet's Data, reused by the next one

	// audio
	audioConfig bool
	adtsProfile uint8 // ADTS profile field (object type - 1)
	adtsFreq    uint8 // sampling frequency index
	adtsChan    uint8 // channel configuration
	audioInfo   AudioInfo
	abuf        []byte // the last audio packet's Data, reused by the next one

	out [1]Packet // Push's result
}

// NewDemuxer returns a Demuxer that has seen no sequence header yet.
func NewDemuxer() *Demuxer { return &Demuxer{} }

// HasVideoConfig reports whether an AVC sequence header has been seen.
func (d *Demuxer) HasVideoConfig() bool { return d.videoConfig }

// HasAudioConfig reports whether an AAC sequence header has been seen.
func (d *Demuxer) HasAudioConfig() bool { return d.audioConfig }

// VideoCodecInfo returns what the SPS tells; false before a sequence header (or when the SPS
// could not be parsed).
func (d *Demuxer) VideoCodecInfo() (VideoInfo, bool) { return d.videoInfo, d.videoInfoOK }

// AudioCodecInfo returns what the AudioSpecificConfig tells; false before a sequence header.
func (d *Demuxer) AudioCodecInfo() (AudioInfo, bool) { return d.audioInfo, d.audioConfig }

// Push takes the next tag. Sequence headers update the codec configuration and produce no
// packet; script tags, video info frames and end-of-sequence produce none; media that comes
// before its sequence header is dropped. Errors wrap ErrUnsupportedCodec (naming the codec) or
// ErrMalformed. The packets and their Data are valid until the next Push: the demuxer reuses
// its buffers (a 3 Mbit/s stream would otherwise make ~400 KB of garbage a second).
func (d *Demuxer) Push(t Tag) ([]Packet, error) {
	var p Packet
	var ok bool
	var err error
	switch t.Type {
	case TagVideo:
		p, ok, err = d.pushVideo(t)
	case TagAudio:
		p, ok, err = d.pushAudio(t)
	}
	if err != nil || !ok {
		return nil, err
	}
	d.out[0] = p
	return d.out[:], nil
}

// keepLimit: a reused buffer larger than this and than 4× what is needed is let go, so that one
// huge frame does not stay allocated for the rest of the connection.
const keepLimit = 256 << 10

// reuse returns buf emptied, with room for n bytes.
func reuse(buf []byte, n int) []byte {
	if cap(buf) < n || (cap(buf) > keepLimit && cap(buf) > 4*n) {
		return make([]byte, 0, n)
	}
	return buf[:0]
}

var videoCodecNames = map[uint8]string{
	1: "JPEG", 2: "Sorenson H.263", 3: "Screen video", 4: "On2 VP6", 5: "On2 VP6 with alpha",
	6: "Screen video v2", 7: "H.264 (AVC)", 12: "H.265 (HEVC, non-standard id 12)", 13: "AV1 (non-standard id 13)",
}

var soundFormatNames = map[uint8]string{
	0: "Linear PCM (platform endian)", 1: "ADPCM", 2: "MP3", 3: "Linear PCM (little endian)",
	4: "Nellymoser 16 kHz", 5: "Nellymoser 8 kHz", 6: "Nellymoser", 7: "G.711 A-law", 8: "G.711 mu-law",
	10: "AAC", 11: "Speex", 13: "Opus (non-standard id 13)", 14: "MP3 8 kHz", 15: "device-specific sound",
}

func (d *Demuxer) pushVideo(t Tag) (Packet, bool, error) {
	h, err := ParseVideoHeader(t.Data)
	if err != nil {
		return Packet{}, false, err
	}
	if h.FourCC != "" {
		return Packet{}, false, fmt.Errorf("%w: video codec %q (Enhanced RTMP); only H.264 (AVC) is accepted", ErrUnsupportedCodec, h.FourCC)
	}
	if h.FrameType == FrameInfo {
		return Packet{}, false, nil
	}
	if h.CodecID != CodecAVC {
		name := videoCodecNames[h.CodecID]
		if name == "" {
			name = "unknown"
		}
		return Packet{}, false, fmt.Errorf("%w: video codec id %d (%s); only H.264 (AVC) is accepted", ErrUnsupportedCodec, h.CodecID, name)
	}
	switch h.PacketType {
	case AVCSequenceHeader:
		return Packet{}, false, d.setAVCConfig(h.Payload)
	case AVCEndOfSequence:
		return Packet{}, false, nil
	case AVCNALU:
	default:
		return Packet{}, false, fmt.Errorf("%w: AVC packet type %d", ErrMalformed, h.PacketType)
	}
	if !d.videoConfig {
		return Packet{}, false, nil
	}
	// Split the length-prefixed NAL units.
	d.nals = d.nals[:0]
	payload := h.Payload
	hasIDR, hasSPS, size := false, false, 6
	for len(payload) > 0 {
		if len(payload) < d.nalLenSize {
			return Packet{}, false, fmt.Errorf("%w: truncated NAL unit length", ErrMalformed)
		}
		var n uint32
		for i := 0; i < d.nalLenSize; i++ {
			n = n<<8 | uint32(payload[i])
		}
		payload = payload[d.nalLenSize:]
		if uint64(n) > uint64(len(payload)) {
			return Packet{}, false, fmt.Errorf("%w: NAL unit length %d past the end of the tag (%d left)", ErrMalformed, n, len(payload))
		}
		nal := payload[:n]
		payload = payload[n:]
		if n == 0 {
			continue
		}
		switch nal[0] & 0x1f {
		case 9: // access unit delimiter: we write our own
			continue
		case 5:
			hasIDR = true
		case 7:
			hasSPS = true
		}
		d.nals = append(d.nals, nal)
		size += 4 + len(nal)
	}
	if len(d.nals) == 0 {
		return Packet{}, false, nil
	}
	key := hasIDR || h.FrameType == FrameKey
	addConfig := key && !hasSPS
	if addConfig {
		size += len(d.spsPPS)
	}
	out := reuse(d.vbuf, size)
	out = append(out, 0, 0, 0, 1, 0x09, 0xf0) // AUD, primary_pic_type 7 (any)
	if addConfig {
		out = append(out, d.spsPPS...)
	}
	for _, nal := range d.nals {
		out = append(out, 0, 0, 0, 1)
		out = append(out, nal...)
	}
	d.vbuf = out
	dts := time.Duration(t.Timestamp) * time.Millisecond
	return Packet{
		Kind:     Video,
		DTS:      dts,
		PTS:      dts + time.Duration(h.Composition)*time.Millisecond,
		Keyframe: key,
		Data:     out,
	}, true, nil
}

// setAVCConfig parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.2.4.1).
func (d *Demuxer) setAVCConfig(b []byte) error {
	if len(b) < 7 {
		return fmt.Errorf("%w: AVC sequence header of %d bytes", ErrMalformed, len(b))
	}
	if b[0] != 1 {
		return fmt.Errorf("%w: AVCDecoderConfigurationRecord version %d", ErrMalformed, b[0])
	}
	lenSize := int(b[4]&0x03) + 1
	if lenSize == 3 {
		return fmt.Errorf("%w: NAL unit length size 3", ErrMalformed)
	}
	var annexB []byte
	var firstSPS []byte
	p := b[5:]
	for _, kind := range []string{"SPS", "PPS"} {
		if len(p) < 1 {
			return fmt.Errorf("%w: AVC sequence header truncated before the %s count", ErrMalformed, kind)
		}
		count := int(p[0])
		if kind == "SPS" {
			count &= 0x1f
		}
		p = p[1:]
		for i := 0; i < count; i++ {
			if len(p) < 2 {
				return fmt.Errorf("%w: AVC sequence header truncated in %s", ErrMalformed, kind)
			}
			n := int(binary.BigEndian.Uint16(p))
			p = p[2:]
			if n > len(p) || n == 0 {
				return fmt.Errorf("%w: AVC sequence header %s length %d", ErrMalformed, kind, n)
			}
			if kind == "SPS" && firstSPS == nil {
				firstSPS = p[:n]
			}
			annexB = append(annexB, 0, 0, 0, 1)
			annexB = append(annexB, p[:n]...)
			p = p[n:]
		}
	}
	if firstSPS == nil {
		return fmt.Errorf("%w: AVC sequence header without an SPS", ErrMalformed)
	}
	d.nalLenSize = lenSize
	d.spsPPS = annexB
	d.videoConfig = true
	d.videoInfo, d.videoInfoOK = parseSPS(firstSPS)
	return nil
}

func (d *Demuxer) pushAudio(t Tag) (Packet, bool, error) {
	h, err := ParseAudioHeader(t.Data)
	if err != nil {
		return Packet{}, false, err
	}
	if h.FourCC != "" {
		return Packet{}, false, fmt.Errorf("%w: audio codec %q (Enhanced RTMP); only AAC is accepted", ErrUnsupportedCodec, h.FourCC)
	}
	if h.SoundFormat != SoundAAC {
		name := soundFormatNames[h.SoundFormat]
		if name == "" {
			name = "unknown"
		}
		return Packet{}, false, fmt.Errorf("%w: audio format %d (%s); only AAC is accepted", ErrUnsupportedCodec, h.SoundFormat, name)
	}
	switch h.PacketType {
	case 0:
		return Packet{}, false, d.setAACConfig(h.Payload)
	case 1:
	default:
		return Packet{}, false, fmt.Errorf("%w: AAC packet type %d", ErrMalformed, h.PacketType)
	}
	if !d.audioConfig || len(h.Payload) == 0 {
		return Packet{}, false, nil
	}
	n := len(h.Payload) + 7
	if n > 0x1fff {
		return Packet{}, false, fmt.Errorf("%w: AAC frame of %d bytes does not fit ADTS", ErrMalformed, len(h.Payload))
	}
	out := reuse(d.abuf, n)[:n]
	d.abuf = out
	out[0] = 0xff
	out[1] = 0xf1 // MPEG-4, layer 0, no CRC
	out[2] = d.adtsProfile<<6 | d.adtsFreq<<2 | d.adtsChan>>2
	out[3] = (d.adtsChan&3)<<6 | byte(n>>11)
	out[4] = byte(n >> 3)
	out[5] = byte(n&7)<<5 | 0x1f // buffer fullness 0x7ff (VBR)
	out[6] = 0xfc                // fullness low bits, one raw data block
	copy(out[7:], h.Payload)
	ts := time.Duration(t.Timestamp) * time.Millisecond
	return Packet{Kind: Audio, DTS: ts, PTS: ts, Keyframe: true, Data: out}, true, nil
}

var aacRates = [...]int{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}

// setAACConfig parses an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).
func (d *Demuxer) setAACConfig(b []byte) error {
	if len(b) < 2 {
		return fmt.Errorf("%w: AAC sequence header of %d bytes", ErrMalformed, len(b))
	}
	r := bitReader{b: b}
	aot := int(r.bits(5))
	if aot == 31 {
		aot = 32 + int(r.bits(6))
	}
	freqIdx := r.bits(4)
	rate := 0
	if freqIdx == 15 {
		rate = int(r.bits(24))
		freqIdx = 0xff
		for i, v := range aacRates {
			if v == rate {
				freqIdx = uint32(i)
			}
		}
	} else if int(freqIdx) < len(aacRates) {
		rate = aacRates[freqIdx]
	} else {
		return fmt.Errorf("%w: AAC sampling frequency index %d", ErrMalformed, freqIdx)
	}
	ch := r.bits(4)
	if r.err {
		return fmt.Errorf("%w: truncated AudioSpecificConfig", ErrMalformed)
	}
	if freqIdx == 0xff {
		return fmt.Errorf("%w: AAC sample rate %d Hz cannot be signalled in ADTS", ErrUnsupportedCodec, rate)
	}
	profile := aot
	switch aot {
	case 1, 2, 3, 4:
	case 5, 29: // SBR / PS: the ADTS header describes the AAC LC core
		profile = 2
	default:
		return fmt.Errorf("%w: AAC audio object type %d; only AAC Main/LC/SSR/LTP and HE-AAC are accepted", ErrUnsupportedCodec, aot)
	}
	if ch == 0 || ch > 7 {
		return fmt.Errorf("%w: AAC channel configuration %d (program config element) is not supported", ErrUnsupportedCodec, ch)
	}
	d.adtsProfile = uint8(profile - 1)
	d.adtsFreq = uint8(freqIdx)
	d.adtsChan = uint8(ch)
	channels := int(ch)
	if ch == 7 {
		channels = 8
	}
	d.audioInfo = AudioInfo{ObjectType: aot, SampleRate: rate, Channels: channels}
	d.audioConfig = true
	return nil
}

// bitReader reads big-endian bit fields; reading past the end sets err and yields zeros.
type bitReader struct {
	b   []byte
	pos int // in bits
	err bool
}

func (r *bitReader) bit() uint32 {
	if r.pos >= len(r.b)*8 {
		r.err = true
		return 0
	}
	v := uint32(r.b[r.pos/8]>>(7-r.pos%8)) & 1
	r.pos++
	return v
}

func (r *bitReader) bits(n int) uint32 {
	var v uint32
	for i := 0; i < n; i++ {
		v = v<<1 | r.bit()
	}
	return v
}

// ue reads an unsigned Exp-Golomb code.
func (r *bitReader) ue() uint32 {
	zeros := 0
	for r.bit() == 0 {
		zeros++
		if zeros > 31 || r.err {
			r.err = true
			return 0
		}
	}
	return (1<<zeros - 1) + r.bits(zeros)
}

// se reads a signed Exp-Golomb code.
func (r *bitReader) se() int32 {
	v := r.ue()
	if v&1 == 1 {
		return int32((v + 1) / 2)
	}
	return -int32(v / 2)
}

// parseSPS reads profile, level and the picture size from an H.264 SPS NAL unit
// (ITU-T H.264 7.3.2.1.1).
func parseSPS(nal []byte) (VideoInfo, bool) {
	if len(nal) < 4 {
		return VideoInfo{}, false
	}
	// Remove emulation prevention bytes (00 00 03).
	rbsp := make([]byte, 0, len(nal))
	zeros := 0
	for _, c := range nal[1:] {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		rbsp = append(rbsp, c)
	}
	if len(rbsp) < 3 {
		return VideoInfo{}, false
	}
	info := VideoInfo{Profile: rbsp[0], Level: rbsp[2]}
	r := bitReader{b: rbsp, pos: 24}
	r.ue() // seq_parameter_set_id
	chroma := uint32(1)
	switch info.Profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma = r.ue()
		if chroma == 3 {
			r.bit() // separate_colour_plane_flag
		}
		r.ue()            // bit_depth_luma_minus8
		r.ue()            // bit_depth_chroma_minus8
		r.bit()           // qpprime_y_zero_transform_bypass_flag
		if r.bit() == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if chroma == 3 {
				lists = 12
			}
			for i := 0; i < lists; i++ {
				if r.bit() == 1 {
					size := 16
					if i >= 6 {
						size = 64
					}
					last, next := int32(8), int32(8)
					for j := 0; j < size && !r.err; j++ {
						if next != 0 {
							next = (last + r.se() + 256) % 256
						}
						if next != 0 {
							last = next
						}
					}
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.bit()
		r.se()
		r.se()
		n := r.ue()
		for i := uint32(0); i < n && !r.err; i++ {
			r.se()
		}
	}
	r.ue()  // max_num_ref_frames
	r.bit() // gaps_in_frame_num_value_allowed_flag
	wMbs := r.ue() + 1
	hMapUnits := r.ue() + 1
	frameMbsOnly := r.bit()
	if frameMbsOnly == 0 {
		r.bit() // mb_adaptive_frame_field_flag
	}
	r.bit() // direct_8x8_inference_flag
	var cl, cr, ct, cb uint32
	if r.bit() == 1 {
		cl, cr, ct, cb = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.err {
		return info, false
	}
	cropX, cropY := uint32(1), 2-frameMbsOnly
	switch chroma {
	case 1:
		cropX, cropY = 2, 2*(2-frameMbsOnly)
	case 2:
		cropX = 2
	}
	w := int64(wMbs)*16 - int64(cropX)*int64(cl+cr)
	hgt := int64(2-frameMbsOnly)*int64(hMapUnits)*16 - int64(cropY)*int64(ct+cb)
	if w <= 0 || hgt <= 0 || w > 1<<16 || hgt > 1<<16 {
		return info, false
	}
	info.Width, info.Height = int(w), int(hgt)
	return info, true
}
