// Package flv reads and writes FLV files, parses FLV audio/video tag bodies (as carried by RTMP
// messages) and turns H.264/AAC tags into Annex-B / ADTS packets ready for MPEG-TS.
//
// Written from the Adobe FLV and F4V file format specification (version 10.1), annex E.
package flv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FLV tag types.
const (
	TagAudio  uint8 = 8
	TagVideo  uint8 = 9
	TagScript uint8 = 18
)

// MaxTagSize is the largest tag body the 24-bit DataSize field can describe.
const MaxTagSize = 1<<24 - 1

// Tag is one FLV tag: an audio, video or script-data body with its timestamp.
type Tag struct {
	Type      uint8 // TagAudio, TagVideo or TagScript
	Timestamp int64 // milliseconds, unwrapped to 64 bits
	Data      []byte
}

// Header is the FLV file header's content.
type Header struct {
	HasAudio, HasVideo bool
}

const headerSize = 9

// WriteHeader writes the 9-byte FLV header and PreviousTagSize0.
func WriteHeader(w io.Writer, h Header) error {
	var b [headerSize + 4]byte
	copy(b[:], "FLV")
	b[3] = 1
	if h.HasAudio {
		b[4] |= 0x04
	}
	if h.HasVideo {
		b[4] |= 0x01
	}
	binary.BigEndian.PutUint32(b[5:9], headerSize)
	_, err := w.Write(b[:])
	return err
}

// WriteTag writes one tag followed by its PreviousTagSize. The timestamp is written modulo 2^32
// (the FLV field is 32 bits); a Reader unwraps it again.
func WriteTag(w io.Writer, t Tag) error {
	if len(t.Data) > MaxTagSize {
		return fmt.Errorf("%w: tag body of %d bytes is over the 24-bit size limit", ErrMalformed, len(t.Data))
	}
	var h [11]byte
	h[0] = t.Type & 0x1f
	putUint24(h[1:4], uint32(len(t.Data)))
	ts := uint32(t.Timestamp)
	putUint24(h[4:7], ts&0xffffff)
	h[7] = byte(ts >> 24)
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	if _, err := w.Write(t.Data); err != nil {
		return err
	}
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(11+len(t.Data)))
	_, err := w.Write(p[:])
	return err
}

// Reader reads the tags of an FLV file in order.
type Reader struct {
	r      io.Reader
	header Header
	ts     Unwrapper
	hdr    [15]byte
}

// NewReader reads and checks the FLV header (and skips any extra header bytes and
// PreviousTagSize0).
func NewReader(r io.Reader) (*Reader, error) {
	var b [headerSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, fmt.Errorf("%w: reading header: %v", ErrMalformed, err)
	}
	if string(b[:3]) != "FLV" || b[3] != 1 {
		return nil, fmt.Errorf("%w: not an FLV version 1 file", ErrMalformed)
	}
	off := binary.BigEndian.Uint32(b[5:9])
	if off < headerSize || off > 1<<20 {
		return nil, fmt.Errorf("%w: header DataOffset %d", ErrMalformed, off)
	}
	// Skip any extension of the header, then PreviousTagSize0.
	if _, err := io.CopyN(io.Discard, r, int64(off-headerSize)+4); err != nil {
		return nil, fmt.Errorf("%w: reading header: %v", ErrMalformed, err)
	}
	return &Reader{r: r, header: Header{HasAudio: b[4]&0x04 != 0, HasVideo: b[4]&0x01 != 0}}, nil
}

// Header is the file header read by NewReader.
func (r *Reader) Header() Header { return r.header }

// ReadTag reads the next tag and the PreviousTagSize after it. It returns io.EOF at a clean end
// of file and an ErrMalformed-wrapped error for a truncated or invalid tag. Timestamps are
// unwrapped to 64 bits.
func (r *Reader) ReadTag() (Tag, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:11]); err != nil {
		if errors.Is(err, io.EOF) {
			return Tag{}, io.EOF
		}
		return Tag{}, fmt.Errorf("%w: truncated tag header: %v", ErrMalformed, err)
	}
	t, size, err := parseTagHeader(r.hdr[:11])
	if err != nil {
		return Tag{}, err
	}
	data := make([]byte, size+4)
	if _, err := io.ReadFull(r.r, data); err != nil {
		return Tag{}, fmt.Errorf("%w: truncated tag body: %v", ErrMalformed, err)
	}
	if prev := binary.BigEndian.Uint32(data[size:]); prev != uint32(size)+11 {
		return Tag{}, fmt.Errorf("%w: PreviousTagSize %d does not match tag size %d", ErrMalformed, prev, size+11)
	}
	t.Data = data[:size:size]
	t.Timestamp = r.ts.Next(uint32(t.Timestamp))
	return t, nil
}

// parseTagHeader parses an 11-byte FLV tag header; Timestamp holds the raw 32-bit value.
func parseTagHeader(h []byte) (Tag, int, error) {
	if h[0]&0x20 != 0 {
		return Tag{}, 0, fmt.Errorf("%w: encrypted (filtered) tags are not supported", ErrMalformed)
	}
	typ := h[0] & 0x1f
	size := int(uint24(h[1:4]))
	ts := uint24(h[4:7]) | uint32(h[7])<<24
	return Tag{Type: typ, Timestamp: int64(ts)}, size, nil
}

// VideoHeader is the parsed VideoTagHeader of an FLV video tag body (legacy or Enhanced RTMP).
type VideoHeader struct {
	FrameType   uint8  // 1 key, 2 inter, 3 disposable inter, 4 generated key, 5 video info/command
	CodecID     uint8  // legacy codec id (7 = AVC); 0 for Enhanced RTMP tags (FourCC set)
	FourCC      string // Enhanced RTMP codec FourCC ("hvc1", "av01", "vp09"), else ""
	PacketType  uint8  // AVC: 0 sequence header, 1 NALUs, 2 end of sequence; Enhanced: its packet type
	Composition int32  // signed 24-bit composition time offset in ms (AVC NALUs)
	Payload     []byte // the bytes after the header
}

// Video frame types.
const (
	FrameKey        uint8 = 1
	FrameInter      uint8 = 2
	FrameDisposable uint8 = 3
	FrameGenerated  uint8 = 4
	FrameInfo       uint8 = 5
)

// CodecAVC is the FLV video codec id of H.264.
const CodecAVC uint8 = 7

// SoundAAC is the FLV SoundFormat of AAC.
const SoundAAC uint8 = 10

// AVC packet types.
const (
	AVCSequenceHeader uint8 = 0
	AVCNALU           uint8 = 1
	AVCEndOfSequence  uint8 = 2
)

// ParseVideoHeader parses the header of a video tag body.
func ParseVideoHeader(data []byte) (VideoHeader, error) {
	if len(data) < 1 {
		return VideoHeader{}, fmt.Errorf("%w: empty video tag", ErrMalformed)
	}
	b0 := data[0]
	if b0&0x80 != 0 { // Enhanced RTMP: IsExHeader, FrameType (3 bits), PacketType (4 bits), FourCC
		h := VideoHeader{FrameType: (b0 >> 4) & 0x07, PacketType: b0 & 0x0f}
		if len(data) < 5 {
			return h, fmt.Errorf("%w: truncated enhanced video header", ErrMalformed)
		}
		h.FourCC = printable(data[1:5])
		h.Payload = data[5:]
		return h, nil
	}
	h := VideoHeader{FrameType: b0 >> 4, CodecID: b0 & 0x0f}
	if h.FrameType == FrameInfo {
		h.Payload = data[1:]
		return h, nil
	}
	if h.CodecID != CodecAVC {
		h.Payload = data[1:]
		return h, nil
	}
	if len(data) < 5 {
		return h, fmt.Errorf("%w: truncated AVC video header (%d bytes)", ErrMalformed, len(data))
	}
	h.PacketType = data[1]
	c := uint24(data[2:5])
	if c&0x800000 != 0 {
		h.Composition = int32(c) - 1<<24
	} else {
		h.Composition = int32(c)
	}
	h.Payload = data[5:]
	return h, nil
}

// AudioHeader is the parsed AudioTagHeader of an FLV audio tag body.
type AudioHeader struct {
	SoundFormat uint8  // 10 = AAC; 9 = Enhanced RTMP (FourCC set)
	FourCC      string // Enhanced RTMP audio FourCC ("Opus", "fLaC", "ac-3", "mp4a"...), else ""
	PacketType  uint8  // AAC: 0 AudioSpecificConfig, 1 raw frame
	Payload     []byte // the bytes after the header
}

// ParseAudioHeader parses the header of an audio tag body.
func ParseAudioHeader(data []byte) (AudioHeader, error) {
	if len(data) < 1 {
		return AudioHeader{}, fmt.Errorf("%w: empty audio tag", ErrMalformed)
	}
	h := AudioHeader{SoundFormat: data[0] >> 4}
	switch h.SoundFormat {
	case SoundAAC:
		if len(data) < 2 {
			return h, fmt.Errorf("%w: truncated AAC audio header", ErrMalformed)
		}
		h.PacketType = data[1]
		h.Payload = data[2:]
	case 9: // Enhanced RTMP ExHeader: PacketType in the low nibble, FourCC follows
		h.PacketType = data[0] & 0x0f
		if len(data) < 5 {
			return h, fmt.Errorf("%w: truncated enhanced audio header", ErrMalformed)
		}
		h.FourCC = printable(data[1:5])
		h.Payload = data[5:]
	default:
		h.Payload = data[1:]
	}
	return h, nil
}

func printable(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("0x%x", b)
		}
	}
	return string(b)
}

func uint24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

func putUint24(b []byte, v uint32) {
	b[0] = byte(v >> 16)
	b[1] = byte(v >> 8)
	b[2] = byte(v)
}

// Unwrapper turns 32-bit millisecond timestamps (FLV tags, RTMP messages) into a 64-bit clock:
// each value is taken as the nearest (signed 32-bit difference) to the previous one, so streams
// go on past 2^24 ms and 2^32 ms. The zero value is ready to use.
type Unwrapper struct {
	init bool
	last uint32
	ext  int64
}

// Next returns ts on the 64-bit clock.
func (u *Unwrapper) Next(ts uint32) int64 {
	if !u.init {
		u.init, u.last, u.ext = true, ts, int64(ts)
		return u.ext
	}
	u.ext += int64(int32(ts - u.last))
	u.last = ts
	return u.ext
}
