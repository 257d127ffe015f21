package livestream_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/livestream"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmps"
)

func TestRTMPS(t *testing.T) {
	needFFmpeg(t)
	certFile, keyFile, fp, err := rtmps.SelfSigned(t.TempDir(), []string{"127.0.0.1", "localhost"})
	if err != nil || len(fp) != 64 {
		t.Fatalf("self-signed certificate: %v %q", err, fp)
	}
	rdb, prefix := testenv.Redis(t)
	e := startWith(t, testenv.OpenSQL(t, testenv.SQLBackends(t)[0]), testenv.Kafka(t), rdb, prefix, t.TempDir(), func(c *livestream.Config) {
		c.RTMPSAddr, c.RTMPSCertFile, c.RTMPSKeyFile = "127.0.0.1:0", certFile, keyFile
	})
	ls := e.create(`{"playback_policy":"public","reconnect_window":0}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	pub := pids(ls)["public"]
	rtmpsAddr := e.svc.RTMPSAddr().String()

	// Plain RTMP on the RTMPS port: the TLS listener refuses the handshake; nothing connects.
	start := time.Now()
	plain := publishFFmpeg(t, "rtmp://"+rtmpsAddr+"/live/"+key, 20*time.Second)
	if err := plain.wait(t, 15*time.Second); err == nil {
		t.Fatalf("plain RTMP on the RTMPS port was accepted; stderr:\n%s", plain.stderr)
	}
	t.Logf("plain RTMP refused after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(plain.stderr.String()))
	if st := e.stream(id); st["status"] != "idle" || st["active_ingest_protocol"] != nil {
		t.Fatalf("after the refused plain RTMP client: %v", st)
	}

	// RTMPS with the same key: connected as rtmps, plays as HLS.
	enc := publishFFmpeg(t, "rtmps://"+rtmpsAddr+"/live/"+key, time.Minute)
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "active" }, "stream never became active over RTMPS")
	if got := e.stream(id)["active_ingest_protocol"]; got != "rtmps" {
		t.Fatalf("active_ingest_protocol = %v, want rtmps", got)
	}
	// {pid}.m3u8 is the master playlist; the source's media playlist lists the segments.
	st, body, _ := e.get("/stream/" + pub + ".m3u8")
	if st != http.StatusOK || !bytes.Contains(body, []byte("#EXT-X-STREAM-INF")) {
		t.Fatalf("master playlist over RTMPS = %d %s", st, body)
	}
	st, body, _ = e.get("/stream/" + pub + "/source.m3u8")
	if st != http.StatusOK || !bytes.Contains(body, []byte("#EXTINF")) {
		t.Fatalf("live media playlist over RTMPS = %d %s", st, body)
	}
	enc.kill(t)
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "idle" }, "stream never went idle")
	if got := e.stream(id)["active_ingest_protocol"]; got != nil {
		t.Fatalf("active_ingest_protocol after the encoder left = %v", got)
	}

	// The same key over plain RTMP on the RTMP port: rtmp.
	enc = publishFFmpeg(t, e.rtmpURL(key), time.Minute)
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "active" }, "stream never became active over RTMP")
	if got := e.stream(id)["active_ingest_protocol"]; got != "rtmp" {
		t.Fatalf("active_ingest_protocol = %v, want rtmp", got)
	}
	enc.kill(t)
}
