package compositor

import "testing"

func TestMix(t *testing.T) {
	const n = 8
	fill := func(v int16, k int) []int16 {
		s := make([]int16, k)
		for i := range s {
			s[i] = v
		}
		return s
	}
	tests := []struct {
		name   string
		tracks [][]int16
		want   int16 // every output sample
	}{
		{"silence without tracks", nil, 0},
		{"one track passes through", [][]int16{fill(1000, prebufferSamples)}, 1000},
		{"two add", [][]int16{fill(1000, prebufferSamples), fill(-300, prebufferSamples)}, 700},
		{"positive overflow clips", [][]int16{fill(30000, prebufferSamples), fill(30000, prebufferSamples)}, 32767},
		{"negative overflow clips", [][]int16{fill(-30000, prebufferSamples), fill(-30000, prebufferSamples)}, -32768},
		{"track below prebuffer waits", [][]int16{fill(1000, prebufferSamples-2)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bufs []*audioBuf
			for _, tr := range tt.tracks {
				b := &audioBuf{}
				b.push(tr)
				bufs = append(bufs, b)
			}
			out := make([]int16, n)
			mixInto(out, make([]int32, n), bufs)
			for i, v := range out {
				if v != tt.want {
					t.Fatalf("sample %d = %d, want %d", i, v, tt.want)
				}
			}
		})
	}
}

func TestAudioBufBounded(t *testing.T) {
	b := &audioBuf{}
	for i := 0; i < 50; i++ {
		b.push(make([]int16, chunkSamples*2))
	}
	if len(b.pcm) > maxBufferSamples {
		t.Fatalf("%d samples queued, cap %d", len(b.pcm), maxBufferSamples)
	}
	// a track that runs dry stops playing until it has a prebuffer again
	b = &audioBuf{}
	b.push(make([]int16, prebufferSamples))
	mixInto(make([]int16, prebufferSamples), make([]int32, prebufferSamples), []*audioBuf{b})
	if b.playing {
		t.Fatal("drained track still playing")
	}
}
