package rtmp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// RTMP message type ids.
const (
	MsgSetChunkSize             uint8 = 1
	MsgAbort                    uint8 = 2
	MsgAck                      uint8 = 3
	MsgUserControl              uint8 = 4
	MsgWindowAckSize            uint8 = 5
	MsgSetPeerBandwidth         uint8 = 6
	MsgAudio                    uint8 = 8
	MsgVideo                    uint8 = 9
	MsgDataAMF3                 uint8 = 15
	MsgSharedObjectAMF3         uint8 = 16
	MsgCommandAMF3              uint8 = 17
	MsgDataAMF0                 uint8 = 18
	MsgSharedObjectAMF0         uint8 = 19
	MsgCommandAMF0              uint8 = 20
	MsgAggregate                uint8 = 22
	defaultChunkSize                  = 128
	maxChunkStreams                   = 256
	extendedTimestampMark             = 0xffffff
	readStep                          = 64 << 10
	protocolControlChunkStream        = 2
	protocolControlMaxChunkSize       = 0x7fffffff
)

// Message is one RTMP message, reassembled from its chunks.
type Message struct {
	CSID      uint32 // chunk stream id it came on / goes out on
	Type      uint8
	StreamID  uint32 // message stream id
	Timestamp uint32 // 32-bit RTMP timestamp in ms (wraps)
	Payload   []byte
}

type chunkStream struct {
	ts       uint32 // timestamp of the last message header
	delta    uint32 // last timestamp delta (type 0: the timestamp itself)
	length   uint32
	typ      uint8
	sid      uint32
	extended bool // the last type 0/1/2 header used an extended timestamp

	active bool // a message is partly received
	msgTs  uint32
	buf    []byte
	spare  []byte // a handed-back payload (Recycle), for this chunk stream's next message
}

// Budget is charged for the memory of partly received messages. It is called from the
// reader's goroutine only.
type Budget interface {
	// Reserve asks for n more bytes; false refuses them.
	Reserve(n int) bool
	// Release gives back n bytes reserved earlier.
	Release(n int)
}

// ReadLimits bound what a ChunkReader buffers for messages that are not complete yet. A buffer
// is charged its allocated size: the first chunk of a message allocates up to 64 KiB (never
// more than the announced length), later chunks double it, never past the announced length.
type ReadLimits struct {
	// MaxMessage: a message announced longer than this fails with ErrMessageTooLarge before
	// any of it is buffered. 0 = no cap (the format allows 16 MiB - 1).
	MaxMessage uint32
	// MaxBuffered: the partly received messages of all chunk streams together may take this
	// many bytes; past it the read fails with ErrBufferLimit. 0 = no cap.
	MaxBuffered int
	// Budget, if set, is charged for every buffered byte; a refusal fails with ErrMemoryBudget.
	Budget Budget
}

// ChunkReader reassembles RTMP messages from a chunk stream (RTMP spec section 5.3). It keeps
// state per chunk stream id, so chunks of different streams may interleave. Set Chunk Size and
// Abort messages are applied by the reader itself (and still returned).
type ChunkReader struct {
	r         *bufio.Reader
	chunkSize uint32
	streams   map[uint32]*chunkStream
	hdr       [16]byte
	lim       ReadLimits
	buffered  int // bytes allocated for partial messages (charged to lim.Budget)
	spares    int // capacity of the chunk streams' spare buffers (at most maxSpares)
}

// maxSpares bounds the handed-back payloads a ChunkReader keeps for reuse (Recycle), over all
// its chunk streams; a payload larger than maxSpare is not kept.
const (
	maxSpare  = 128 << 10
	maxSpares = 256 << 10
)

// NewChunkReader reads chunks from r (wrapped in a bufio.Reader unless it is one) with the
// initial chunk size of 128 bytes.
func NewChunkReader(r io.Reader) *ChunkReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &ChunkReader{r: br, chunkSize: defaultChunkSize, streams: make(map[uint32]*chunkStream)}
}

// ChunkSize is the peer's current chunk size.
func (c *ChunkReader) ChunkSize() uint32 { return c.chunkSize }

// SetLimits changes the limits for what is read from now on; messages already partly
// buffered stay, and count against the new limits.
func (c *ChunkReader) SetLimits(l ReadLimits) { c.lim = l }

// Buffered is the number of bytes allocated for partly received messages.
func (c *ChunkReader) Buffered() int { return c.buffered }

// Release drops every partly received message and gives its bytes back to the Budget. Call
// it when the connection ends; the reader can go on reading afterwards.
func (c *ChunkReader) Release() {
	for _, cs := range c.streams {
		c.drop(cs)
		cs.spare = nil
	}
	c.spares = 0
}

// Recycle hands back the payload of m, a message ReadMessage returned, once the caller keeps
// nothing of it: the next message of m's chunk stream is read into the same memory when it
// fits (an encoder sends audio and video on a chunk stream each, in frames of similar size).
// A reader keeps at most maxSpares bytes of such buffers; while kept they are not charged to
// the limits (a buffer in use again is).
func (c *ChunkReader) Recycle(m Message) {
	cs := c.streams[m.CSID]
	b := m.Payload[:0:cap(m.Payload)]
	if cs == nil || cap(b) == 0 || cap(b) > maxSpare || cap(b) <= cap(cs.spare) {
		return
	}
	if c.spares-cap(cs.spare)+cap(b) > maxSpares {
		return
	}
	c.spares += cap(b) - cap(cs.spare)
	cs.spare = b
}

// takeSpare gives cs its spare buffer for a new message of cs.length bytes if it fits, charging
// the limits for it; it reports whether it did.
func (c *ChunkReader) takeSpare(cs *chunkStream) bool {
	sp := cs.spare
	if sp == nil || cap(sp) < int(cs.length) {
		return false
	}
	cs.spare = nil
	c.spares -= cap(sp)
	n := cap(sp)
	if c.lim.MaxBuffered > 0 && c.buffered+n > c.lim.MaxBuffered {
		return false // let grow allocate what is needed, and say no when that is too much
	}
	if c.lim.Budget != nil && !c.lim.Budget.Reserve(n) {
		return false
	}
	cs.buf = sp
	c.buffered += n
	return true
}

// drop forgets cs's partial message.
func (c *ChunkReader) drop(cs *chunkStream) {
	if n := cap(cs.buf); n > 0 {
		c.buffered -= n
		if c.lim.Budget != nil {
			c.lim.Budget.Release(n)
		}
	}
	cs.active, cs.buf = false, nil
}

// handOff gives cs's complete message to the caller: its bytes are no longer buffered here.
func (c *ChunkReader) handOff(cs *chunkStream) []byte {
	b := cs.buf
	c.drop(cs)
	return b
}

// grow makes room for k more bytes in cs.buf, charging the limits for the new allocation.
func (c *ChunkReader) grow(cs *chunkStream, k int) error {
	need := len(cs.buf) + k
	if need <= cap(cs.buf) {
		return nil
	}
	if cap(cs.buf) == 0 && c.takeSpare(cs) {
		return nil // the whole message fits
	}
	newCap := max(need, min(int(cs.length), readStep))
	if cap(cs.buf) > 0 {
		newCap = max(need, min(int(cs.length), 2*cap(cs.buf)))
	}
	more := newCap - cap(cs.buf)
	if c.lim.MaxBuffered > 0 && c.buffered+more > c.lim.MaxBuffered {
		return fmt.Errorf("%w: %d bytes of partial messages buffered, %d more needed, limit %d", ErrBufferLimit, c.buffered, more, c.lim.MaxBuffered)
	}
	if c.lim.Budget != nil && !c.lim.Budget.Reserve(more) {
		return fmt.Errorf("%w: %d more bytes refused", ErrMemoryBudget, more)
	}
	nb := make([]byte, len(cs.buf), newCap)
	copy(nb, cs.buf) // the old buffer is garbage now
	cs.buf = nb
	c.buffered += more
	return nil
}

func (c *ChunkReader) readFull(n int) ([]byte, error) {
	b := c.hdr[:n]
	if _, err := io.ReadFull(c.r, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: connection ended inside a chunk header", ErrProtocol)
		}
		return nil, err
	}
	return b, nil
}

// ReadMessage reads chunks until a message is complete and returns it. The payload is a fresh
// slice owned by the caller. io.EOF means the peer closed between chunks.
func (c *ChunkReader) ReadMessage() (Message, error) {
	for {
		m, done, err := c.readChunk()
		if err != nil {
			return Message{}, err
		}
		if done {
			return m, nil
		}
	}
}

func (c *ChunkReader) readChunk() (Message, bool, error) {
	b0, err := c.r.ReadByte()
	if err != nil {
		return Message{}, false, err
	}
	format := b0 >> 6
	csid := uint32(b0 & 0x3f)
	switch csid {
	case 0:
		b, err := c.readFull(1)
		if err != nil {
			return Message{}, false, err
		}
		csid = 64 + uint32(b[0])
	case 1:
		b, err := c.readFull(2)
		if err != nil {
			return Message{}, false, err
		}
		csid = 64 + uint32(b[0]) + uint32(b[1])<<8
	}
	cs := c.streams[csid]
	if cs == nil {
		if len(c.streams) >= maxChunkStreams {
			return Message{}, false, fmt.Errorf("%w: more than %d chunk streams", ErrProtocol, maxChunkStreams)
		}
		// A chunk stream must start with a type 0 header; be lenient and start from zeros
		// (librtmp computes relative headers against zero).
		cs = &chunkStream{}
		c.streams[csid] = cs
	}
	if format != 3 && cs.active {
		// A new message header while a message is unfinished: the peer gave up on it.
		c.drop(cs)
	}
	switch format {
	case 0:
		h, err := c.readFull(11)
		if err != nil {
			return Message{}, false, err
		}
		ts := uint24(h[0:3])
		cs.length = uint24(h[3:6])
		cs.typ = h[6]
		cs.sid = binary.LittleEndian.Uint32(h[7:11])
		cs.extended = ts == extendedTimestampMark
		if cs.extended {
			e, err := c.readFull(4)
			if err != nil {
				return Message{}, false, err
			}
			ts = binary.BigEndian.Uint32(e)
		}
		cs.ts, cs.delta = ts, ts
	case 1, 2:
		n := 7
		if format == 2 {
			n = 3
		}
		h, err := c.readFull(n)
		if err != nil {
			return Message{}, false, err
		}
		d := uint24(h[0:3])
		if format == 1 {
			cs.length = uint24(h[3:6])
			cs.typ = h[6]
		}
		cs.extended = d == extendedTimestampMark
		if cs.extended {
			e, err := c.readFull(4)
			if err != nil {
				return Message{}, false, err
			}
			d = binary.BigEndian.Uint32(e)
		}
		cs.delta = d
		cs.ts += d
	case 3:
		// The extended timestamp field is repeated on type 3 chunks when the last header of
		// this chunk stream used one.
		if cs.extended {
			if _, err := c.readFull(4); err != nil {
				return Message{}, false, err
			}
		}
		if !cs.active {
			cs.ts += cs.delta // a new message with the same delta as the previous one
		}
	}
	if !cs.active {
		if c.lim.MaxMessage > 0 && cs.length > c.lim.MaxMessage {
			return Message{}, false, fmt.Errorf("%w: a %d-byte message (type %d) announced, limit %d", ErrMessageTooLarge, cs.length, cs.typ, c.lim.MaxMessage)
		}
		if c.lim.MaxBuffered > 0 && int(cs.length) > c.lim.MaxBuffered {
			return Message{}, false, fmt.Errorf("%w: a %d-byte message (type %d) announced, limit %d", ErrBufferLimit, cs.length, cs.typ, c.lim.MaxBuffered)
		}
		cs.active = true
		cs.msgTs = cs.ts
	}
	// Read this chunk's payload, growing the buffer only as bytes arrive so that a header
	// claiming a large message costs little until the data is really sent.
	n := int(min(c.chunkSize, cs.length-uint32(len(cs.buf))))
	for n > 0 {
		k := min(n, readStep)
		if err := c.grow(cs, k); err != nil {
			return Message{}, false, err
		}
		start := len(cs.buf)
		cs.buf = cs.buf[:start+k]
		if _, err := io.ReadFull(c.r, cs.buf[start:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return Message{}, false, fmt.Errorf("%w: connection ended inside a message", ErrProtocol)
			}
			return Message{}, false, err
		}
		n -= k
	}
	if uint32(len(cs.buf)) < cs.length {
		return Message{}, false, nil
	}
	m := Message{CSID: csid, Type: cs.typ, StreamID: cs.sid, Timestamp: cs.msgTs}
	m.Payload = c.handOff(cs)
	if err := c.control(m); err != nil {
		return Message{}, false, err
	}
	return m, true, nil
}

// control applies Set Chunk Size and Abort.
func (c *ChunkReader) control(m Message) error {
	switch m.Type {
	case MsgSetChunkSize:
		if len(m.Payload) < 4 {
			return fmt.Errorf("%w: short Set Chunk Size", ErrProtocol)
		}
		n := binary.BigEndian.Uint32(m.Payload) & protocolControlMaxChunkSize
		if n == 0 {
			return fmt.Errorf("%w: chunk size 0", ErrProtocol)
		}
		c.chunkSize = n
	case MsgAbort:
		if len(m.Payload) < 4 {
			return fmt.Errorf("%w: short Abort", ErrProtocol)
		}
		if cs := c.streams[binary.BigEndian.Uint32(m.Payload)]; cs != nil {
			c.drop(cs)
		}
	}
	return nil
}

// ChunkWriter splits messages into chunks: a type 0 header for each message and type 3 headers
// for its continuation chunks, with the extended timestamp repeated on them when used.
type ChunkWriter struct {
	w         io.Writer
	chunkSize uint32
	hdr       []byte
}

// NewChunkWriter writes to w with the initial chunk size of 128 bytes. Wrap w in a bufio.Writer.
func NewChunkWriter(w io.Writer) *ChunkWriter {
	return &ChunkWriter{w: w, chunkSize: defaultChunkSize, hdr: make([]byte, 0, 18)}
}

// SetChunkSize changes the outgoing chunk size; send a Set Chunk Size message first.
func (c *ChunkWriter) SetChunkSize(n uint32) { c.chunkSize = max(1, n&protocolControlMaxChunkSize) }

// ChunkSize is the current outgoing chunk size.
func (c *ChunkWriter) ChunkSize() uint32 { return c.chunkSize }

func appendBasicHeader(b []byte, format uint8, csid uint32) []byte {
	switch {
	case csid < 64:
		return append(b, format<<6|byte(csid))
	case csid < 320:
		return append(b, format<<6, byte(csid-64))
	default:
		v := csid - 64
		return append(b, format<<6|1, byte(v), byte(v>>8))
	}
}

// WriteMessage writes m as chunks on chunk stream m.CSID (2..65599).
func (c *ChunkWriter) WriteMessage(m Message) error {
	if m.CSID < 2 || m.CSID > 65599 {
		return fmt.Errorf("%w: chunk stream id %d", ErrProtocol, m.CSID)
	}
	if len(m.Payload) > 0xffffff {
		return fmt.Errorf("%w: message of %d bytes", ErrProtocol, len(m.Payload))
	}
	ext := m.Timestamp >= extendedTimestampMark
	h := appendBasicHeader(c.hdr[:0], 0, m.CSID)
	ts := m.Timestamp
	if ext {
		ts = extendedTimestampMark
	}
	h = append(h, byte(ts>>16), byte(ts>>8), byte(ts))
	n := len(m.Payload)
	h = append(h, byte(n>>16), byte(n>>8), byte(n), m.Type)
	h = binary.LittleEndian.AppendUint32(h, m.StreamID)
	if ext {
		h = binary.BigEndian.AppendUint32(h, m.Timestamp)
	}
	p := m.Payload
	for first := true; first || len(p) > 0; first = false {
		if !first {
			h = appendBasicHeader(c.hdr[:0], 3, m.CSID)
			if ext {
				h = binary.BigEndian.AppendUint32(h, m.Timestamp)
			}
		}
		if _, err := c.w.Write(h); err != nil {
			return err
		}
		k := min(len(p), int(c.chunkSize))
		if _, err := c.w.Write(p[:k]); err != nil {
			return err
		}
		p = p[k:]
	}
	return nil
}

func uint24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }
