#!/usr/bin/env bash
# RTMP ingest against nginx-rtmp: installs Debian's nginx and libnginx-mod-rtmp when absent,
# then runs services/livestream's rtmp-bench -compare: the same publishers (N streams of one
# ~3 Mbit/s 720p30 H.264 + AAC FLV at real-time pace) against the live stream service (its
# process alone: Kafka in another process, this machine's Redis) and against nginx-rtmp (one
# process, live + hls on, 2 s fragments), at 10, 20 and 50 streams, in alternating pairs; prints
# CPU and RSS of each server process and the ratios. LEVELS, PAIRS (1), DURATION (30s) tune it;
# BENCH_QUICK=1 measures 8 s per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
LEVELS=${LEVELS:-10,20,50}
PAIRS=${PAIRS:-1}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-8s}
if [ "${BENCH_QUICK:-}" = 1 ]; then DURATION=8s; WARMUP=3s; fi

if [ ! -x /usr/sbin/nginx ] || [ ! -f /usr/lib/nginx/modules/ngx_rtmp_module.so ]; then
  echo "bench-ingest: installing nginx and libnginx-mod-rtmp from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nginx libnginx-mod-rtmp >/dev/null
  # Debian starts the packaged nginx on port 80; the bench runs its own process.
  (command -v systemctl >/dev/null && systemctl stop nginx) 2>/dev/null || true
fi
command -v ffmpeg >/dev/null || { echo "bench-ingest: ffmpeg is needed to generate the source FLV" >&2; exit 1; }
redis=${SPACECAST_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
redis-cli -u "$redis" ping >/dev/null || { echo "bench-ingest: Redis at $redis does not answer" >&2; exit 1; }

mkdir -p bin
(cd services/livestream && go build -o ../../bin/ ./cmd/rtmp-bench)
bin/rtmp-bench -compare -levels "$LEVELS" -pairs "$PAIRS" -duration "$DURATION" -warmup "$WARMUP" -redis "$redis"
