package flv

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestWriterReaderRoundTrip(t *testing.T) {
	tags := []Tag{
		{Type: TagScript, Timestamp: 0, Data: []byte{2, 0, 1, 'x'}},
		{Type: TagVideo, Timestamp: 0, Data: []byte{0x17, 0, 0, 0, 0}},
		{Type: TagAudio, Timestamp: 1<<24 - 1, Data: []byte{0xaf, 1, 9}},
		{Type: TagVideo, Timestamp: 1<<24 + 5, Data: bytes.Repeat([]byte{7}, 70000)},
		{Type: TagAudio, Timestamp: 1<<31 + 7, Data: []byte{0xaf, 1}},
		{Type: TagAudio, Timestamp: 1<<32 - 10, Data: []byte{0xaf, 1}},
		{Type: TagAudio, Timestamp: 1<<32 + 10, Data: []byte{0xaf, 1}}, // wraps the 32-bit field
		{Type: TagVideo, Timestamp: 1<<32 + 5, Data: []byte{}},         // slightly backwards
	}
	var buf bytes.Buffer
	if err := WriteHeader(&buf, Header{HasAudio: true, HasVideo: true}); err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if err := WriteTag(&buf, tag); err != nil {
			t.Fatal(err)
		}
	}
	if got := buf.Bytes()[:13]; !bytes.Equal(got, []byte{'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0}) {
		t.Errorf("header % x", got)
	}
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); !h.HasAudio || !h.HasVideo {
		t.Errorf("header %+v", h)
	}
	for i, want := range tags {
		got, err := r.ReadTag()
		if err != nil {
			t.Fatalf("tag %d: %v", i, err)
		}
		if got.Type != want.Type || got.Timestamp != want.Timestamp || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("tag %d: got type %d ts %d len %d, want type %d ts %d len %d", i, got.Type, got.Timestamp, len(got.Data), want.Type, want.Timestamp, len(want.Data))
		}
	}
	if _, err := r.ReadTag(); err != io.EOF {
		t.Errorf("at the end: %v, want io.EOF", err)
	}
}

func TestReaderErrors(t *testing.T) {
	var good bytes.Buffer
	_ = WriteHeader(&good, Header{HasVideo: true})
	_ = WriteTag(&good, Tag{Type: TagVideo, Data: []byte{1, 2, 3}})
	g := good.Bytes()
	badPrev := append([]byte(nil), g...)
	badPrev[len(badPrev)-1]++
	encrypted := append([]byte(nil), g...)
	encrypted[13] |= 0x20
	cases := map[string][]byte{
		"not flv":             []byte("GIF89a......."),
		"short header":        g[:5],
		"truncated tag":       g[:len(g)-6],
		"truncated header":    g[:17],
		"bad PreviousTagSize": badPrev,
		"encrypted tag":       encrypted,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(in))
			if err == nil {
				_, err = r.ReadTag()
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParseVideoHeader(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want VideoHeader
		err  error
	}{
		{"avc sequence header", []byte{0x17, 0, 0, 0, 0, 1, 2}, VideoHeader{FrameType: 1, CodecID: 7, PacketType: 0, Payload: []byte{1, 2}}, nil},
		{"avc inter with composition", []byte{0x27, 1, 0, 0, 0x50, 9}, VideoHeader{FrameType: 2, CodecID: 7, PacketType: 1, Composition: 80, Payload: []byte{9}}, nil},
		{"negative composition", []byte{0x27, 1, 0xff, 0xff, 0xfe}, VideoHeader{FrameType: 2, CodecID: 7, PacketType: 1, Composition: -2, Payload: []byte{}}, nil},
		{"enhanced hevc", []byte{0x91, 'h', 'v', 'c', '1', 7}, VideoHeader{FrameType: 1, PacketType: 1, FourCC: "hvc1", Payload: []byte{7}}, nil},
		{"sorenson", []byte{0x22, 5}, VideoHeader{FrameType: 2, CodecID: 2, Payload: []byte{5}}, nil},
		{"info frame", []byte{0x57, 0}, VideoHeader{FrameType: 5, CodecID: 7, Payload: []byte{0}}, nil},
		{"empty", nil, VideoHeader{}, ErrMalformed},
		{"truncated avc", []byte{0x17, 1, 0}, VideoHeader{}, ErrMalformed},
		{"truncated enhanced", []byte{0x91, 'h'}, VideoHeader{}, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVideoHeader(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.FrameType != tc.want.FrameType || got.CodecID != tc.want.CodecID || got.PacketType != tc.want.PacketType ||
				got.Composition != tc.want.Composition || got.FourCC != tc.want.FourCC || !bytes.Equal(got.Payload, tc.want.Payload) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseAudioHeader(t *testing.T) {
	h, err := ParseAudioHeader([]byte{0xaf, 1, 5, 6})
	if err != nil || h.SoundFormat != 10 || h.PacketType != 1 || !bytes.Equal(h.Payload, []byte{5, 6}) {
		t.Errorf("aac: %+v %v", h, err)
	}
	h, err = ParseAudioHeader([]byte{0x2f, 7})
	if err != nil || h.SoundFormat != 2 || !bytes.Equal(h.Payload, []byte{7}) {
		t.Errorf("mp3: %+v %v", h, err)
	}
	h, err = ParseAudioHeader([]byte{0x91, 'O', 'p', 'u', 's'})
	if err != nil || h.FourCC != "Opus" || h.PacketType != 1 {
		t.Errorf("enhanced opus: %+v %v", h, err)
	}
	if _, err := ParseAudioHeader([]byte{0xaf}); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated aac: %v", err)
	}
}

var (
	testSPS = []byte{0x67, 0x4d, 0x40, 0x0a, 0xec, 0xa2, 0x3d, 0x80, 0x88, 0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x00, 0xa0, 0x78, 0x91, 0x2c, 0xb0}
	testPPS = []byte{0x68, 0xce, 0x0f, 0xc8}
)

func avcConfig(lenSize int, sps, pps []byte) []byte {
	b := []byte{0x17, 0, 0, 0, 0, 1, sps[1], sps[2], sps[3], 0xfc | byte(lenSize-1), 0xe1, 0, byte(len(sps))}
	b = append(b, sps...)
	b = append(b, 1, 0, byte(len(pps)))
	return append(b, pps...)
}

func avcFrame(key bool, cts int32, lenSize int, nals ...[]byte) []byte {
	b := []byte{0x27, 1, byte(cts >> 16), byte(cts >> 8), byte(cts)}
	if key {
		b[0] = 0x17
	}
	for _, n := range nals {
		for i := lenSize - 1; i >= 0; i-- {
			b = append(b, byte(len(n)>>(8*i)))
		}
		b = append(b, n...)
	}
	return b
}

func annexB(nals ...[]byte) []byte {
	var b []byte
	for _, n := range nals {
		b = append(b, 0, 0, 0, 1)
		b = append(b, n...)
	}
	return b
}

func TestDemuxerH264(t *testing.T) {
	aud := []byte{0x09, 0xf0}
	sei := []byte{0x06, 0x05, 0x01, 0xaa, 0x80}
	idr := []byte{0x65, 0x88, 0x80, 0x10}
	slice := []byte{0x41, 0x9a, 0x00}
	for _, lenSize := range []int{4, 2, 1} {
		d := NewDemuxer()
		// Media before the sequence header is dropped.
		if pk, err := d.Push(Tag{Type: TagVideo, Data: avcFrame(true, 0, lenSize, idr)}); err != nil || len(pk) != 0 {
			t.Fatalf("frame before config: %v %v", pk, err)
		}
		if pk, err := d.Push(Tag{Type: TagVideo, Data: avcConfig(lenSize, testSPS, testPPS)}); err != nil || len(pk) != 0 {
			t.Fatalf("config: %v %v", pk, err)
		}
		if !d.HasVideoConfig() || d.HasAudioConfig() {
			t.Fatal("config flags")
		}
		info, ok := d.VideoCodecInfo()
		if !ok || info.Width != 64 || info.Height != 48 || info.Profile != 77 || info.Level != 10 {
			t.Errorf("video info %+v %v, want 64x48 Main@1.0", info, ok)
		}
		cases := []struct {
			name   string
			tag    Tag
			key    bool
			dts    time.Duration
			pts    time.Duration
			annexb []byte
		}{
			{"idr gets AUD and SPS/PPS, input AUD dropped", Tag{Type: TagVideo, Timestamp: 1000, Data: avcFrame(true, 80, lenSize, aud, sei, idr)},
				true, time.Second, 1080 * time.Millisecond, annexB(aud, testSPS, testPPS, sei, idr)},
			{"inter frame", Tag{Type: TagVideo, Timestamp: 1033, Data: avcFrame(false, 0, lenSize, slice)},
				false, 1033 * time.Millisecond, 1033 * time.Millisecond, annexB(aud, slice)},
			{"negative composition", Tag{Type: TagVideo, Timestamp: 1066, Data: avcFrame(false, -33, lenSize, slice)},
				false, 1066 * time.Millisecond, 1033 * time.Millisecond, annexB(aud, slice)},
			{"idr with in-band SPS/PPS is left alone", Tag{Type: TagVideo, Timestamp: 2000, Data: avcFrame(true, 0, lenSize, testSPS, testPPS, idr)},
				true, 2 * time.Second, 2 * time.Second, annexB(aud, testSPS, testPPS, idr)},
			{"IDR NAL in a frame not flagged key", Tag{Type: TagVideo, Timestamp: 3000, Data: avcFrame(false, 0, lenSize, idr)},
				true, 3 * time.Second, 3 * time.Second, annexB(aud, testSPS, testPPS, idr)},
		}
		for _, tc := range cases {
			pk, err := d.Push(tc.tag)
			if err != nil || len(pk) != 1 {
				t.Fatalf("%s (len %d): %v %v", tc.name, lenSize, pk, err)
			}
			p := pk[0]
			if p.Kind != Video || p.Keyframe != tc.key || p.DTS != tc.dts || p.PTS != tc.pts || !bytes.Equal(p.Data, tc.annexb) {
				t.Errorf("%s (len %d): got key=%v dts=%v pts=%v\n% x\nwant key=%v dts=%v pts=%v\n% x", tc.name, lenSize,
					p.Keyframe, p.DTS, p.PTS, p.Data, tc.key, tc.dts, tc.pts, tc.annexb)
			}
		}
		// A sequence header re-sent mid-stream replaces SPS/PPS.
		sps2 := append(append([]byte(nil), testSPS...), 0x99)
		if _, err := d.Push(Tag{Type: TagVideo, Data: avcConfig(lenSize, sps2, testPPS)}); err != nil {
			t.Fatal(err)
		}
		pk, err := d.Push(Tag{Type: TagVideo, Timestamp: 4000, Data: avcFrame(true, 0, lenSize, idr)})
		if err != nil || !bytes.Equal(pk[0].Data, annexB(aud, sps2, testPPS, idr)) {
			t.Errorf("after a new sequence header: %v %v", pk, err)
		}
	}
}

func TestDemuxerErrors(t *testing.T) {
	withConfig := func() *Demuxer {
		d := NewDemuxer()
		if _, err := d.Push(Tag{Type: TagVideo, Data: avcConfig(4, testSPS, testPPS)}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := []struct {
		name     string
		d        *Demuxer
		tag      Tag
		err      error
		contains string
	}{
		{"sorenson", NewDemuxer(), Tag{Type: TagVideo, Data: []byte{0x22, 0}}, ErrUnsupportedCodec, "Sorenson H.263"},
		{"vp6", NewDemuxer(), Tag{Type: TagVideo, Data: []byte{0x14, 0}}, ErrUnsupportedCodec, "VP6"},
		{"hevc enhanced", NewDemuxer(), Tag{Type: TagVideo, Data: []byte{0x90, 'h', 'v', 'c', '1'}}, ErrUnsupportedCodec, "hvc1"},
		{"av1 enhanced", NewDemuxer(), Tag{Type: TagVideo, Data: []byte{0x90, 'a', 'v', '0', '1'}}, ErrUnsupportedCodec, "av01"},
		{"mp3", NewDemuxer(), Tag{Type: TagAudio, Data: []byte{0x2f, 0xff}}, ErrUnsupportedCodec, "MP3"},
		{"speex", NewDemuxer(), Tag{Type: TagAudio, Data: []byte{0xb6, 0}}, ErrUnsupportedCodec, "Speex"},
		{"opus enhanced", NewDemuxer(), Tag{Type: TagAudio, Data: []byte{0x90, 'O', 'p', 'u', 's'}}, ErrUnsupportedCodec, "Opus"},
		{"aac usac", NewDemuxer(), Tag{Type: TagAudio, Data: []byte{0xaf, 0, 0xf9, 0x48, 0x40}}, ErrUnsupportedCodec, "object type 42"},
		{"short avc config", NewDemuxer(), Tag{Type: TagVideo, Data: []byte{0x17, 0, 0, 0, 0, 1, 2}}, ErrMalformed, "sequence header"},
		{"nal past end", withConfig(), Tag{Type: TagVideo, Data: []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 9, 0x65}}, ErrMalformed, "past the end"},
		{"short aac config", NewDemuxer(), Tag{Type: TagAudio, Data: []byte{0xaf, 0, 0x12}}, ErrMalformed, "AAC sequence header"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.d.Push(tc.tag)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("got %v, want %v naming %q", err, tc.err, tc.contains)
			}
		})
	}
}

func TestDemuxerAAC(t *testing.T) {
	cases := []struct {
		name   string
		asc    []byte
		header []byte // ADTS header for a 10-byte frame
		info   AudioInfo
	}{
		// AAC LC, 44.1 kHz, stereo: profile 1, index 4, channels 2, frame length 17.
		{"lc 44.1k stereo", []byte{0x12, 0x10}, []byte{0xff, 0xf1, 0x50, 0x80, 0x02, 0x3f, 0xfc}, AudioInfo{2, 44100, 2}},
		// AAC LC, 8 kHz mono (what ffmpeg's testdata file carries).
		{"lc 8k mono", []byte{0x15, 0x88}, []byte{0xff, 0xf1, 0x6c, 0x40, 0x02, 0x3f, 0xfc}, AudioInfo{2, 8000, 1}},
		// HE-AAC (SBR, object type 5), 24 kHz core, stereo: ADTS describes the LC core.
		{"he-aac", []byte{0x2b, 0x10, 0x88, 0x00}, []byte{0xff, 0xf1, 0x58, 0x80, 0x02, 0x3f, 0xfc}, AudioInfo{5, 24000, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDemuxer()
			if pk, _ := d.Push(Tag{Type: TagAudio, Data: []byte{0xaf, 1, 1, 2}}); len(pk) != 0 {
				t.Error("audio before its config was not dropped")
			}
			if _, err := d.Push(Tag{Type: TagAudio, Data: append([]byte{0xaf, 0}, tc.asc...)}); err != nil {
				t.Fatal(err)
			}
			if info, ok := d.AudioCodecInfo(); !ok || info != tc.info {
				t.Errorf("audio info %+v, want %+v", info, tc.info)
			}
			frame := bytes.Repeat([]byte{0x21}, 10)
			pk, err := d.Push(Tag{Type: TagAudio, Timestamp: 23, Data: append([]byte{0xaf, 1}, frame...)})
			if err != nil || len(pk) != 1 {
				t.Fatalf("%v %v", pk, err)
			}
			p := pk[0]
			if p.Kind != Audio || !p.Keyframe || p.DTS != 23*time.Millisecond || p.PTS != p.DTS {
				t.Errorf("packet %+v", p)
			}
			if !bytes.Equal(p.Data[:7], tc.header) || !bytes.Equal(p.Data[7:], frame) {
				t.Errorf("ADTS % x, want % x", p.Data[:7], tc.header)
			}
		})
	}
}

// TestDemuxerFFmpegFile runs a real ffmpeg-made FLV (64x48 H.264 with B-frames + AAC 8 kHz).
func TestDemuxerFFmpegFile(t *testing.T) {
	f, err := os.Open("testdata/tiny.flv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDemuxer()
	var video, audio, keys, reordered int
	for {
		tag, err := r.ReadTag()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pk, err := d.Push(tag)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pk {
			switch p.Kind {
			case Video:
				video++
				if p.Keyframe {
					keys++
					if !bytes.Contains(p.Data, testSPSPrefix) {
						t.Error("keyframe without SPS")
					}
				}
				if p.PTS != p.DTS {
					reordered++
				}
				if !bytes.HasPrefix(p.Data, []byte{0, 0, 0, 1, 9, 0xf0}) {
					t.Error("video packet does not start with an AUD")
				}
			case Audio:
				audio++
				if p.Data[0] != 0xff || p.Data[1]&0xf0 != 0xf0 {
					t.Error("audio packet without ADTS sync word")
				}
			}
		}
	}
	if video != 6 || keys != 2 || reordered == 0 || audio < 4 {
		t.Errorf("video=%d keys=%d reordered=%d audio=%d, want 6 frames, 2 keyframes (GOP 5), B-frames and audio", video, keys, reordered, audio)
	}
	if info, ok := d.VideoCodecInfo(); !ok || info.Width != 64 || info.Height != 48 {
		t.Errorf("video info %+v", info)
	}
}

var testSPSPrefix = []byte{0, 0, 0, 1, 0x67}

func FuzzFLVTag(f *testing.F) {
	if b, err := os.ReadFile("testdata/tiny.flv"); err == nil {
		f.Add(b)
	}
	var buf bytes.Buffer
	_ = WriteHeader(&buf, Header{HasAudio: true, HasVideo: true})
	_ = WriteTag(&buf, Tag{Type: TagVideo, Data: avcConfig(4, testSPS, testPPS)})
	_ = WriteTag(&buf, Tag{Type: TagVideo, Timestamp: 1 << 24, Data: avcFrame(true, -5, 4, testSPS, []byte{0x65, 1})})
	_ = WriteTag(&buf, Tag{Type: TagAudio, Data: []byte{0xaf, 0, 0x12, 0x10}})
	_ = WriteTag(&buf, Tag{Type: TagAudio, Data: []byte{0xaf, 1, 0x21}})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("header error %v does not wrap ErrMalformed", err)
			}
			return
		}
		d := NewDemuxer()
		var tags []Tag
		for {
			tag, err := r.ReadTag()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrMalformed) {
					t.Fatalf("tag error %v is neither EOF nor ErrMalformed", err)
				}
				break
			}
			tags = append(tags, tag)
			_, _ = ParseVideoHeader(tag.Data)
			_, _ = ParseAudioHeader(tag.Data)
			pk, err := d.Push(tag)
			if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedCodec) {
				t.Fatalf("demux error %v wraps neither ErrMalformed nor ErrUnsupportedCodec", err)
			}
			for _, p := range pk {
				if p.Kind == Video && !bytes.HasPrefix(p.Data, []byte{0, 0, 0, 1, 9}) {
					t.Fatal("video packet without AUD")
				}
				if p.Kind == Audio && (len(p.Data) < 7 || int(p.Data[3]&3)<<11|int(p.Data[4])<<3|int(p.Data[5])>>5 != len(p.Data)) {
					t.Fatal("ADTS frame length does not match the packet")
				}
			}
		}
		// What was read writes back to the same tags.
		var out bytes.Buffer
		_ = WriteHeader(&out, r.Header())
		for _, tag := range tags {
			if err := WriteTag(&out, tag); err != nil {
				t.Fatal(err)
			}
		}
		r2, err := NewReader(&out)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range tags {
			got, err := r2.ReadTag()
			if err != nil || got.Type != want.Type&0x1f || got.Timestamp != want.Timestamp || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("tag %d did not round-trip: %v", i, err)
			}
		}
	})
}
