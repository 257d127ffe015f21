package simulcast

import (
	"testing"

	"github.com/pion/rtp"
)

type discard struct{}

func (discard) WriteRTP(*rtp.Packet) error { return nil }

// BenchmarkForwarderWrite: the cost per packet given to a subscriber's Forwarder, for a packet
// of the forwarded layer (rewritten and written to a writer that drops it) and for a packet of
// another layer (ignored).
func BenchmarkForwarderWrite(b *testing.B) {
	for _, bc := range []struct {
		name string
		rid  string
	}{{"forwarded", "f"}, {"other-layer", "q"}} {
		b.Run(bc.name, func(b *testing.B) {
			f, err := NewForwarder(ForwarderOptions{MimeType: MimeTypeVP8, Writer: discard{}, Target: "f"})
			if err != nil {
				b.Fatal(err)
			}
			key := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1, Timestamp: 1}, Payload: append([]byte{0x10}, vp8Key...)}
			if err := f.Write("f", key); err != nil {
				b.Fatal(err)
			}
			pkt := &rtp.Packet{
				Header:  rtp.Header{Version: 2, SequenceNumber: 2, Timestamp: 3000, Extension: true, ExtensionProfile: 0xbede},
				Payload: make([]byte, 1100),
			}
			_ = pkt.SetExtension(4, []byte("f"))
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt.Payload)))
			for b.Loop() {
				pkt.SequenceNumber++
				if err := f.Write(bc.rid, pkt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
