#!/usr/bin/env bash
# Creates Spacecast's topics (3 partitions each, keyed by aggregate id). Idempotent.
set -euo pipefail
BOOTSTRAP=${BOOTSTRAP:-localhost:9092}
PARTITIONS=${PARTITIONS:-3}
REPLICATION=${REPLICATION:-1}
for t in spacecast.spaces spacecast.rtc spacecast.livestreams spacecast.keys spacecast.webhooks; do
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$t" --partitions "$PARTITIONS" --replication-factor "$REPLICATION"
done
