package compositor

// audioBuf is one track's PCM waiting to be mixed (interleaved stereo int16). A track joins
// the mix once it has prebuffer samples and leaves it (to prebuffer again) when it runs dry,
// so network jitter costs a short gap rather than a crackle every chunk; more than maxBuffer
// queued drops the oldest, keeping the delay bounded.
type audioBuf struct {
	pcm     []int16
	playing bool
}

const (
	prebufferSamples = 2 * chunkSamples * 2  // 40 ms, interleaved
	maxBufferSamples = 10 * chunkSamples * 2 // 200 ms
)

func (b *audioBuf) push(pcm []int16) {
	b.pcm = append(b.pcm, pcm...)
	if over := len(b.pcm) - maxBufferSamples; over > 0 {
		over += over % 2
		b.pcm = append(b.pcm[:0], b.pcm[over:]...)
	}
}

// mixInto adds up every playing track's next len(acc) samples into acc (int32, so no
// intermediate overflow) and then clips to out.
func mixInto(out []int16, acc []int32, bufs []*audioBuf) {
	for i := range acc {
		acc[i] = 0
	}
	n := len(acc)
	for _, b := range bufs {
		if !b.playing {
			if len(b.pcm) < prebufferSamples {
				continue
			}
			b.playing = true
		}
		take := min(n, len(b.pcm))
		for i := 0; i < take; i++ {
			acc[i] += int32(b.pcm[i])
		}
		b.pcm = append(b.pcm[:0], b.pcm[take:]...)
		if len(b.pcm) == 0 {
			b.playing = false
		}
	}
	for i, v := range acc {
		switch {
		case v > 32767:
			out[i] = 32767
		case v < -32768:
			out[i] = -32768
		default:
			out[i] = int16(v)
		}
	}
}
