#!/usr/bin/env bash
# Webhooks burst against its anchor. When webhooks-bench has its own comparison
# (-only-compare: the service's burst and a bare net/http client in the same process, alternating
# pairs, deliveries/s and CPU per delivery) this script runs that on SQLite and PostgreSQL.
# Otherwise: services/webhooks' webhooks-bench (the real service,
# embedded Kafka, this machine's Redis when it answers, SQLite and PostgreSQL) and
# bench/anchors' rawhook (a bare net/http client posting the same 1 KB signed bodies to the same
# kind of local receivers at the service's concurrency: 10 endpoints x 4), in alternating pairs
# (order swapped every pair). Prints every run, each side's median deliveries/s and the median of
# the pairs' ratios. Only the throughput line of webhooks-bench is compared (its other phases
# run short here). PAIRS (3) and BURST (3000 events = 30,000 deliveries) tune it; BENCH_QUICK=1
# runs one pair of 1,000 events.
set -euo pipefail
cd "$(dirname "$0")/../.."
PAIRS=${PAIRS:-3}
BURST=${BURST:-3000}
if [ "${BENCH_QUICK:-}" = 1 ]; then PAIRS=1; BURST=1000; fi
mkdir -p bin
go build -o bin/ ./services/webhooks/cmd/webhooks-bench ./bench/anchors/cmd/rawhook

redis=()
if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then redis=(-redis "${SPACECAST_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"); fi
dbs=(sqlite)
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then dbs+=(postgres); fi

if bin/webhooks-bench -h 2>&1 | grep -q -- '-only-compare'; then
  echo "bench-webhooks: $(date -u +%FT%TZ), $(nproc) CPUs, webhooks-bench -only-compare, $PAIRS pairs, redis ${redis[1]:-embedded}"
  for db in "${dbs[@]}"; do
    dbflag=()
    if [ "$db" = postgres ]; then
      name="whbench_$$"
      psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $name" >/dev/null
      dbflag=(-db "postgres://postgres@127.0.0.1:5432/$name?sslmode=disable")
    fi
    echo "== $db"
    bin/webhooks-bench "${dbflag[@]}" "${redis[@]}" -only-compare -compare "$PAIRS" -compare-events "$BURST"
    if [ "$db" = postgres ]; then psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $name" >/dev/null; fi
  done
  exit 0
fi

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print v[(NR+1)/2]} else {print (v[NR/2]+v[NR/2+1])/2}}'; }

echo "bench-webhooks: $(date -u +%FT%TZ), $(nproc) CPUs, $PAIRS pairs, $BURST events x 10 endpoints, redis ${redis[1]:-embedded}"
summary=()
for db in "${dbs[@]}"; do
  svc=() raw=() ratios=()
  for p in $(seq 1 "$PAIRS"); do
    order=(service anchor)
    if [ $((p % 2)) = 0 ]; then order=(anchor service); fi
    s="" a=""
    for side in "${order[@]}"; do
      if [ "$side" = service ]; then
        dbflag=()
        if [ "$db" = postgres ]; then
          name="whbench_$$_$p"
          psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $name" >/dev/null
          dbflag=(-db "postgres://postgres@127.0.0.1:5432/$name?sslmode=disable")
        fi
        line=$(bin/webhooks-bench "${dbflag[@]}" "${redis[@]}" -burst-events "$BURST" -sustain-rate 0 -rate 100 -isolation-rate 20 -duration 1s | grep '^throughput:')
        if [ "$db" = postgres ]; then psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $name" >/dev/null; fi
        s=$(sed -E 's/.*: ([0-9.]+) deliveries\/s.*/\1/' <<<"$line")
        echo "$db pair $p service: $line"
      else
        line=$(bin/rawhook -deliveries $((BURST * 10)) | tail -n1)
        a=$(sed -E 's/.*s: ([0-9.]+) deliveries\/s.*/\1/' <<<"$line")
        echo "$db pair $p anchor:  $line"
      fi
    done
    svc+=("$s") raw+=("$a") ratios+=("$(awk -v s="$s" -v a="$a" 'BEGIN {printf "%.3f", s/a}')")
  done
  summary+=("$db: webhooks-bench $(printf '%s\n' "${svc[@]}" | median) deliveries/s, rawhook $(printf '%s\n' "${raw[@]}" | median) deliveries/s, ratio $(printf '%s\n' "${ratios[@]}" | median) (pairs ${ratios[*]})")
done
echo "medians (ratio = median of the pairs' webhooks-bench/rawhook):"
printf '%s\n' "${summary[@]}"
