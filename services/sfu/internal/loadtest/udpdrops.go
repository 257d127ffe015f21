package loadtest

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
)

// udpDrops sums the receive drops (a full socket buffer) of the UDP sockets that process
// pid has open, from /proc/net/udp and udp6: where the loss happened, the SFU's socket or
// the load generator's. ok false when /proc cannot be read.
func udpDrops(pid int) (drops uint64, ok bool) {
	inodes, err := socketInodes(pid)
	if err != nil {
		return 0, false
	}
	for _, name := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		f, err := os.Open(name)
		if err != nil {
			return 0, false
		}
		d := sumDrops(f, inodes)
		f.Close()
		drops += d
	}
	return drops, true
}

// socketInodes lists the inodes of pid's open sockets.
func socketInodes(pid int) (map[uint64]bool, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[uint64]bool{}
	for _, e := range ents {
		l, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		if s, ok := strings.CutPrefix(l, "socket:["); ok {
			if n, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				out[n] = true
			}
		}
	}
	return out, nil
}

// sumDrops adds the drops column of the /proc/net/udp lines whose inode is in inodes.
func sumDrops(r io.Reader, inodes map[uint64]bool) uint64 {
	var sum uint64
	sc := bufio.NewScanner(r)
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 13 {
			continue
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil || !inodes[ino] {
			continue
		}
		if d, err := strconv.ParseUint(f[12], 10, 64); err == nil {
			sum += d
		}
	}
	return sum
}
