package hls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/asticode/go-astits"
)

// tsMuxer writes the MPEG-TS of a segmenter epoch. It produces the same bytes as astits.Muxer
// with MuxerOptTablesRetransmitPeriod(math.MaxInt32) (PAT/PMT before the first PES and before
// each random access point on the PCR PID), but packetizes PES data itself into one reused
// buffer of at most tsChunk bytes per Write, instead of astits' bit writer: the bit writer cost
// more CPU than the rest of ingest. PAT/PMT are rare and still come from astits.
type tsMuxer struct {
	w       io.Writer
	tables  *astits.Muxer // PAT and PMT only
	pcrPID  uint16
	cc      map[uint16]uint8 // next continuity counter per elementary PID
	written bool
	buf     []byte
}

func newTSMuxer(w io.Writer) *tsMuxer {
	return &tsMuxer{w: w, tables: astits.NewMuxer(context.Background(), w, astits.MuxerOptTablesRetransmitPeriod(math.MaxInt32)),
		cc: map[uint16]uint8{}}
}

// AddElementaryStream adds a stream to the PMT.
func (m *tsMuxer) AddElementaryStream(es astits.PMTElementaryStream) error {
	if err := m.tables.AddElementaryStream(es); err != nil {
		return err
	}
	m.cc[es.ElementaryPID] = 0
	return nil
}

// SetPCRPID names the PCR PID in the PMT.
func (m *tsMuxer) SetPCRPID(pid uint16) {
	m.tables.SetPCRPID(pid)
	m.pcrPID = pid
}

const tsPacketSize = 188

// tsChunk: a PES is written in pieces of up to this many bytes (32 TS packets), so that the
// muxer's buffer stays small instead of growing to the largest keyframe of the stream.
const tsChunk = 32 * tsPacketSize

var errTSUnsupported = errors.New("hls: MPEG-TS field not supported by the segment writer")

// WriteData writes one PES (its data split over 188-byte packets, the last one stuffed through
// its adaptation field) after PAT/PMT when due. The adaptation field, when given, goes into the
// first packet; of it only the random access and discontinuity indicators and the PCR are
// supported, and of the PES optional header the data alignment indicator, PTS and DTS.
func (m *tsMuxer) WriteData(d *astits.MuxerData) (int, error) {
	cc, ok := m.cc[d.PID]
	if !ok {
		return 0, astits.ErrPIDNotFound
	}
	af := d.AdaptationField
	if af != nil && (af.HasOPCR || af.HasSplicingCountdown || af.HasTransportPrivateData || af.HasAdaptationExtensionField ||
		af.ElementaryStreamPriorityIndicator || af.IsOneByteStuffing || af.StuffingLength != 0) {
		return 0, errTSUnsupported
	}
	if d.PES == nil || d.PES.Header == nil {
		return 0, errTSUnsupported
	}
	h := d.PES.Header
	oh := h.OptionalHeader
	if oh == nil || oh.HasESCR || oh.HasESRate || oh.HasDSMTrickMode || oh.HasAdditionalCopyInfo || oh.HasCRC || oh.HasExtension ||
		oh.ScramblingControl != 0 || oh.Priority || oh.IsCopyrighted || oh.IsOriginal ||
		(oh.PTSDTSIndicator != astits.PTSDTSIndicatorOnlyPTS && oh.PTSDTSIndicator != astits.PTSDTSIndicatorBothPresent) ||
		h.StreamID == 0 || !(h.IsVideoStream() || h.StreamID&0xe0 == 0xc0) {
		return 0, errTSUnsupported
	}
	total := 0
	if !m.written || (af != nil && af.RandomAccessIndicator && d.PID == m.pcrPID) {
		n, err := m.tables.WriteTables()
		total += n
		if err != nil {
			return total, err
		}
		m.written = true
	}
	data := d.PES.Data
	if len(data) == 0 {
		return total, nil
	}

	// The PES header: start code, stream id, length (0 for video), optional header.
	var hdr [19]byte
	hdr[0], hdr[1], hdr[2], hdr[3] = 0, 0, 1, h.StreamID
	optLen := 5
	if oh.PTSDTSIndicator == astits.PTSDTSIndicatorBothPresent {
		optLen = 10
	}
	if !h.IsVideoStream() {
		if l := len(data) + 3 + optLen; l <= 0xffff {
			hdr[4], hdr[5] = byte(l>>8), byte(l)
		}
	}
	hdr[6] = 0x80
	if oh.DataAlignmentIndicator {
		hdr[6] |= 0x04
	}
	hdr[7] = oh.PTSDTSIndicator << 6
	hdr[8] = byte(optLen)
	if oh.PTSDTSIndicator == astits.PTSDTSIndicatorBothPresent {
		putTimestamp(hdr[9:14], 0b0011, oh.PTS.Base)
		putTimestamp(hdr[14:19], 0b0001, oh.DTS.Base)
	} else {
		putTimestamp(hdr[9:14], 0b0010, oh.PTS.Base)
	}
	pesHdr := hdr[:9+optLen]

	m.buf = m.buf[:0]
	first := true
	for len(data) > 0 {
		if len(m.buf)+tsPacketSize > tsChunk {
			n, err := m.w.Write(m.buf)
			total += n
			if err != nil {
				return total, err
			}
			m.buf = m.buf[:0]
		}
		start := len(m.buf)
		m.buf = slices.Grow(m.buf, tsPacketSize)[:start+tsPacketSize]
		p := m.buf[start : start+tsPacketSize]
		p[0] = 0x47
		p[1], p[2] = byte(d.PID>>8)&0x1f, byte(d.PID)
		afLen := -1 // bytes after the length byte; -1: no adaptation field
		if first && af != nil {
			afLen = 1
			if af.HasPCR {
				afLen += 6
			}
		}
		avail := tsPacketSize - 4
		if afLen >= 0 {
			avail -= 1 + afLen
		}
		head := 0
		if first {
			head = len(pesHdr)
			if avail < head {
				return total, errTSUnsupported
			}
			p[1] |= 0x40 // payload unit start
		}
		n := min(avail-head, len(data))
		stuff := avail - head - n
		if stuff > 0 {
			if afLen < 0 {
				afLen = 0 // one byte of stuffing: the length byte alone
				stuff--
				if stuff > 0 {
					afLen = 1 // a flags byte, then stuffing
					stuff--
				}
			}
			afLen += stuff
		}
		i := 4
		afc := byte(0x10) // payload
		if afLen >= 0 {
			afc |= 0x20
			p[i] = byte(afLen)
			i++
			if afLen > 0 {
				flags := byte(0)
				if first && af != nil {
					if af.DiscontinuityIndicator {
						flags |= 0x80
					}
					if af.RandomAccessIndicator {
						flags |= 0x40
					}
					if af.HasPCR {
						flags |= 0x10
					}
				}
				p[i] = flags
				i++
				if first && af != nil && af.HasPCR {
					putPCR(p[i:i+6], af.PCR)
					i += 6
				}
				for ; i < 5+afLen; i++ {
					p[i] = 0xff
				}
			}
		}
		p[3] = afc | cc&0x0f
		cc = (cc + 1) & 0x0f
		i += copy(p[i:], pesHdr[:head])
		i += copy(p[i:], data[:n])
		if i != tsPacketSize {
			return total, fmt.Errorf("hls: TS packet of %d bytes", i)
		}
		data = data[n:]
		first = false
	}
	m.cc[d.PID] = cc
	n, err := m.w.Write(m.buf)
	return total + n, err
}

// putTimestamp writes a 33-bit PTS or DTS with its 4-bit prefix and marker bits.
func putTimestamp(b []byte, prefix uint8, ts int64) {
	b[0] = prefix<<4 | byte(ts>>30&0x07)<<1 | 1
	v := (ts>>15&0x7fff)<<1 | 1
	b[1], b[2] = byte(v>>8), byte(v)
	v = (ts&0x7fff)<<1 | 1
	b[3], b[4] = byte(v>>8), byte(v)
}

// putPCR writes a program clock reference: 33-bit base, 6 reserved bits, 9-bit extension.
func putPCR(b []byte, cr *astits.ClockReference) {
	v := uint64(cr.Base&(1<<33-1))<<15 | 0x3f<<9 | uint64(cr.Extension&0x1ff)
	for i := 5; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}
