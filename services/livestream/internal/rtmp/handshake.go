package rtmp

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
)

const (
	rtmpVersion   = 3
	handshakeSize = 1536
)

// serverHandshake runs the server side of the plain RTMP handshake (RTMP spec 5.2): read C0+C1,
// send S0+S1+S2 at once (S2 echoes C1), read C2. A client that sends a digest C1 (ffmpeg, Flash)
// is answered the same way; publishers do not verify the server's digest.
func serverHandshake(rw io.ReadWriter, uptime uint32) error {
	c := make([]byte, 1+handshakeSize)
	if _, err := io.ReadFull(rw, c[:1]); err != nil {
		return fmt.Errorf("handshake: reading C0: %w", err)
	}
	if c[0] != rtmpVersion {
		return fmt.Errorf("%w: handshake: unsupported RTMP version %d (only plain RTMP version 3; RTMPE/RTMPT are not supported)", ErrProtocol, c[0])
	}
	if _, err := io.ReadFull(rw, c[1:]); err != nil {
		return fmt.Errorf("handshake: reading C1: %w", err)
	}
	c1 := c[1:]
	s := make([]byte, 1+2*handshakeSize)
	s[0] = rtmpVersion
	s1 := s[1 : 1+handshakeSize]
	binary.BigEndian.PutUint32(s1[0:4], uptime)
	// s1[4:8] stays zero: plain handshake.
	if _, err := rand.Read(s1[8:]); err != nil {
		return err
	}
	s2 := s[1+handshakeSize:]
	copy(s2, c1)                                // time and random echo of C1
	binary.BigEndian.PutUint32(s2[4:8], uptime) // time2: when we read C1
	if _, err := rw.Write(s); err != nil {
		return fmt.Errorf("handshake: writing S0-S2: %w", err)
	}
	if _, err := io.ReadFull(rw, c1); err != nil { // C2: not checked
		return fmt.Errorf("handshake: reading C2: %w", err)
	}
	return nil
}

// clientHandshake runs the client side of the plain handshake.
func clientHandshake(rw io.ReadWriter) error {
	c := make([]byte, 1+handshakeSize)
	c[0] = rtmpVersion
	if _, err := rand.Read(c[9:]); err != nil {
		return err
	}
	if _, err := rw.Write(c); err != nil {
		return fmt.Errorf("handshake: writing C0+C1: %w", err)
	}
	s := make([]byte, 1+2*handshakeSize)
	if _, err := io.ReadFull(rw, s); err != nil {
		return fmt.Errorf("handshake: reading S0-S2: %w", err)
	}
	if s[0] != rtmpVersion {
		return fmt.Errorf("%w: handshake: server sent version %d", ErrProtocol, s[0])
	}
	if _, err := rw.Write(s[1 : 1+handshakeSize]); err != nil { // C2 echoes S1
		return fmt.Errorf("handshake: writing C2: %w", err)
	}
	return nil
}
