package simulcast

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/ssrf"
	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, b := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed", b)
			}
			t.Skipf("%s is not installed (apt-get install ffmpeg)", b)
		}
	}
}

// source encodes a few seconds of H.264 (keyframe every second) + AAC as FLV and returns its
// tags and the span a loop of them takes, in ms.
func source(t *testing.T, seconds int) ([]flv.Tag, int64) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "src.flv")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", strconv.Itoa(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k", "-f", "flv", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg source: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := flv.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	var tags []flv.Tag
	for {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tags = append(tags, tag)
	}
	last := int64(0)
	for _, tg := range tags {
		last = max(last, tg.Timestamp)
	}
	return tags, last + 40 // the next loop starts after every tag of this one
}

// feed writes tags at real time, looping (timestamps continue) until ctx ends or loops are
// done (loops < 0: forever). Headers (script, sequence headers) are sent once, first.
func feed(ctx context.Context, f *Fanout, tags []flv.Tag, dur int64, loops int) {
	start := time.Now()
	for loop := 0; loops < 0 || loop < loops; loop++ {
		for _, tg := range tags {
			if loop > 0 && isHeader(tg) {
				continue
			}
			tg.Timestamp += int64(loop) * dur
			if d := time.Until(start.Add(time.Duration(tg.Timestamp) * time.Millisecond)); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			f.WriteTag(tg)
		}
	}
}

func isHeader(t flv.Tag) bool {
	switch t.Type {
	case flv.TagScript:
		return true
	case flv.TagVideo:
		h, err := flv.ParseVideoHeader(t.Data)
		return err == nil && h.PacketType == flv.AVCSequenceHeader
	case flv.TagAudio:
		h, err := flv.ParseAudioHeader(t.Data)
		return err == nil && h.PacketType == 0
	}
	return false
}

// recorder is the Statuses the pushers write to, for one target.
type recorder struct {
	mu   sync.Mutex
	seen []Status
	ch   chan struct{}
	bad  []string // writes for another stream or target
}

// Status is a target status as the store spells it.
type Status = string

const (
	Idle         = store.TargetIdle
	Starting     = store.TargetStarting
	Broadcasting = store.TargetBroadcasting
	Errored      = store.TargetErrored
)

var _ Statuses = (*recorder)(nil)

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1)} }

func (r *recorder) SetSimulcastTargetStatus(_ context.Context, liveStreamID, id, status string) error {
	r.mu.Lock()
	if liveStreamID != "ls1" || id != "t1" {
		r.bad = append(r.bad, liveStreamID+"/"+id)
	}
	r.seen = append(r.seen, status)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) statuses() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Status(nil), r.seen...)
}

func (r *recorder) count(s Status) int {
	n := 0
	for _, x := range r.statuses() {
		if x == s {
			n++
		}
	}
	return n
}

func (r *recorder) waitFor(t *testing.T, s Status, n int, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for r.count(s) < n {
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("waited %v for %d × %s; statuses %v", within, n, s, r.statuses())
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// listening reports whether something listens on 127.0.0.1:port, without connecting (an
// `ffmpeg -listen 1` receiver takes exactly one connection).
func listening(port int) bool {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
			return true
		}
	}
	return false
}

type receiver struct {
	out  string
	done chan error
	errb *strings.Builder
}

// startReceiver runs `ffmpeg -listen 1 -f flv -i rtmp://127.0.0.1:port/app/key -c copy out.flv`.
func startReceiver(t *testing.T, port int, wait bool) *receiver {
	t.Helper()
	r := &receiver{out: filepath.Join(t.TempDir(), "out.flv"), done: make(chan error, 1), errb: &strings.Builder{}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning",
		"-listen", "1", "-f", "flv", "-i", fmt.Sprintf("rtmp://127.0.0.1:%d/app/key", port), "-c", "copy", "-copyinkf", "-y", r.out) // -copyinkf: keep what arrives before a keyframe, so the test sees it
	cmd.Stderr = r.errb
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { r.done <- cmd.Wait(); cancel() }()
	t.Cleanup(func() { cancel() })
	if wait {
		deadline := time.Now().Add(10 * time.Second)
		for !listening(port) {
			if time.Now().After(deadline) {
				t.Fatalf("ffmpeg receiver never listened on %d: %s", port, r.errb)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return r
}

// finish waits for the receiver to exit and checks its output: H.264 and AAC, at least min.
func (r *receiver) finish(t *testing.T, min time.Duration) {
	t.Helper()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("ffmpeg receiver: %v\n%s", err, r.errb)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("ffmpeg receiver did not end after the pusher stopped")
	}
	b, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name,codec_type:format=duration", "-of", "json", r.out).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", r.out, err)
	}
	var probe struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			CodecType string `json:"codec_type"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		t.Fatalf("ffprobe output %s: %v", b, err)
	}
	codecs := map[string]string{}
	for _, s := range probe.Streams {
		codecs[s.CodecType] = s.CodecName
	}
	if codecs["video"] != "h264" || codecs["audio"] != "aac" {
		t.Errorf("received streams %v, want video h264 and audio aac", codecs)
	}
	d, _ := strconv.ParseFloat(probe.Format.Duration, 64)
	if time.Duration(d*float64(time.Second)) < min {
		t.Errorf("received %.2fs, want at least %v", d, min)
	}
	// The first video packet is a keyframe (a target joining mid-stream waits for one).
	first, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=flags",
		"-read_intervals", "%+#1", "-of", "csv=p=0", r.out).Output()
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(first)), "K") {
		t.Errorf("first received video packet flags %q (%v), want a keyframe", first, err)
	}
	// Decodes without errors: the stream starts at sequence headers and a keyframe.
	if out, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-i", r.out, "-f", "null", "-").CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("decoding the received stream: %v\n%s", err, out)
	}
}

func loopGuard(t *testing.T) *ssrf.Guard {
	t.Helper()
	g, err := ssrf.New([]string{"127.0.0.0/8"}) // the tests' allow setting, as webhooks tests use
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func start(t *testing.T, o Options, rec *recorder, rawURL string) *Fanout {
	t.Helper()
	o.Statuses = rec
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	key := "key"
	f := Start(o, "ls1", []store.SimulcastTarget{{ID: "t1", LiveStreamID: "ls1", URL: rawURL, StreamKey: &key, Status: store.TargetIdle}})
	if f == nil {
		t.Fatal("Start returned no fanout for one target")
	}
	return f
}

func (r *recorder) check(t *testing.T, want []Status) {
	t.Helper()
	if got := r.statuses(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if len(r.bad) > 0 {
		t.Errorf("statuses written for %v", r.bad)
	}
}

// TestPushToFFmpeg: an ffmpeg RTMP receiver gets the source as sent (H.264 + AAC, decodable
// from the first frame) and the target goes starting → broadcasting → idle.
func TestPushToFFmpeg(t *testing.T) {
	needFFmpeg(t)
	tags, dur := source(t, 4)
	port := freePort(t)
	rcv := startReceiver(t, port, true)
	g := loopGuard(t)
	rec := newRecorder()
	f := start(t, Options{Dialer: g.Dialer(5 * time.Second)}, rec, fmt.Sprintf("rtmp://127.0.0.1:%d/app", port))
	feed(context.Background(), f, tags, dur, 1)
	rec.waitFor(t, Broadcasting, 1, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // the queue drains
	f.Stop()
	rec.check(t, []Status{Starting, Broadcasting, Idle})
	rcv.finish(t, 3*time.Second)
}

// TestReceiverDownThenUp: with no receiver the target is errored and retried (starting
// again); once the receiver listens it broadcasts, from a keyframe.
func TestReceiverDownThenUp(t *testing.T) {
	needFFmpeg(t)
	tags, dur := source(t, 2)
	port := freePort(t)
	g := loopGuard(t)
	rec := newRecorder()
	f := start(t, Options{Dialer: g.Dialer(2 * time.Second), MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond},
		rec, fmt.Sprintf("rtmp://127.0.0.1:%d/app", port))
	ctx, cancel := context.WithCancel(context.Background())
	fed := make(chan struct{})
	go func() { defer close(fed); feed(ctx, f, tags, dur, -1) }()
	rec.waitFor(t, Errored, 3, 10*time.Second)
	if rec.count(Broadcasting) != 0 {
		t.Fatalf("broadcasting with no receiver: %v", rec.statuses())
	}
	rcv := startReceiver(t, port, false)
	rec.waitFor(t, Broadcasting, 1, 15*time.Second)
	time.Sleep(3 * time.Second)
	cancel()
	<-fed
	f.Stop()
	st := rec.statuses()
	if st[0] != Starting || st[1] != Errored || st[len(st)-1] != Idle || st[len(st)-2] != Broadcasting {
		t.Errorf("statuses %v: want starting, errored, ..., broadcasting, idle", st)
	}
	for i, s := range st[:len(st)-1] {
		if s == Errored && st[i+1] != Starting {
			t.Errorf("statuses %v: errored not followed by a retry (starting)", st)
		}
	}
	rcv.finish(t, 2*time.Second)
}

// TestRefusedAddressAtDial: the dialer refuses a loopback target when loopback is not
// allowed (the API's literal check is bypassed here: a name could resolve to it later).
func TestRefusedAddressAtDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	g, err := ssrf.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	f := start(t, Options{Dialer: g.Dialer(time.Second), MinBackoff: time.Minute}, rec, "rtmp://"+ln.Addr().String()+"/app")
	rec.waitFor(t, Errored, 1, 5*time.Second)
	f.Stop()
	rec.check(t, []Status{Starting, Errored, Idle})
	if n := accepted.Load(); n != 0 {
		t.Errorf("the refused address was connected to %d times", n)
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestPushRTMPS sends to a TLS listener that forwards to an ffmpeg RTMP receiver; a pusher
// that does not trust the certificate is errored and never reaches the receiver.
func TestPushRTMPS(t *testing.T) {
	needFFmpeg(t)
	tags, dur := source(t, 3)
	port := freePort(t)
	rcv := startReceiver(t, port, true)
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var tlsOK, tlsFailed atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					tlsFailed.Add(1)
					return
				}
				tlsOK.Add(1)
				up, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(c, up); c.Close() }()
				_, _ = io.Copy(up, c)
				up.(*net.TCPConn).CloseWrite()
				time.Sleep(time.Second)
			}()
		}
	}()
	g := loopGuard(t)
	u := "rtmps://" + ln.Addr().String() + "/app"

	untrusting := newRecorder()
	bad := start(t, Options{Dialer: g.Dialer(2 * time.Second), MinBackoff: time.Minute}, untrusting, u)
	untrusting.waitFor(t, Errored, 1, 5*time.Second)
	bad.Stop()
	untrusting.check(t, []Status{Starting, Errored, Idle})
	for end := time.Now().Add(3 * time.Second); tlsFailed.Load() == 0 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond) // the listener's side of the failed handshake
	}
	if tlsOK.Load() != 0 || tlsFailed.Load() != 1 {
		t.Fatalf("untrusted certificate: %d handshakes succeeded, %d failed; want 0 and 1", tlsOK.Load(), tlsFailed.Load())
	}

	rec := newRecorder()
	f := start(t, Options{Dialer: g.Dialer(5 * time.Second), TLS: &tls.Config{RootCAs: pool}}, rec, u)
	feed(context.Background(), f, tags, dur, 1)
	rec.waitFor(t, Broadcasting, 1, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	f.Stop()
	rec.check(t, []Status{Starting, Broadcasting, Idle})
	if tlsOK.Load() != 1 {
		t.Errorf("%d TLS sessions reached the receiver, want 1", tlsOK.Load())
	}
	rcv.finish(t, 2*time.Second)
}

// TestWriteTagNeverBlocks: a target that accepts TCP but never answers the RTMP handshake
// must not slow the ingest: WriteTag returns at once and drops what does not fit; Stop ends
// the stuck connection attempt.
func TestWriteTagNeverBlocks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never read
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	rec := newRecorder()
	f := start(t, Options{Dialer: loopGuard(t).Dialer(time.Second), Queue: 16}, rec, "rtmp://"+ln.Addr().String()+"/app")
	tag := flv.Tag{Type: flv.TagAudio, Data: []byte{0xaf, 1, 0, 0}}
	begin := time.Now()
	for i := 0; i < 10000; i++ {
		tag.Timestamp = int64(i)
		f.WriteTag(tag)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("10000 WriteTag calls took %v", d)
	}
	stopped := time.Now()
	f.Stop()
	if d := time.Since(stopped); d > 3*time.Second {
		t.Errorf("Stop took %v with a connection attempt stuck", d)
	}
	if rec.count(Broadcasting) != 0 || rec.statuses()[len(rec.statuses())-1] != Idle {
		t.Errorf("statuses %v: want no broadcasting, idle last", rec.statuses())
	}
}
