package sfu

import (
	"net"
	"os"
)

// DefaultInternalURL is the SPACECAST_SFU_INTERNAL_URL a node listening on httpAddr
// (SPACECAST_HTTP_ADDR) advertises when none is set: ws://<host>:<port> with the listen
// address's host, or this machine's hostname when it listens on every address.
func DefaultInternalURL(httpAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return ""
		}
		host = h
	}
	return "ws://" + net.JoinHostPort(host, port)
}
