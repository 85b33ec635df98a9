#!/usr/bin/env bash
# Runs the Kafka broker in the foreground as this very process (exec), so the pid recorded by
# cluster/services.sh is the JVM's own: stopping or SIGKILLing that pid stops the broker.
#   cluster/kafka/run.sh KAFKA_HOME CONF LOGS_DIR
set -euo pipefail
home="$1" conf="$2" logs="$3"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# KAFKA_JIT_OPTS: by default the JIT stops at C1. C2's compile threads took 0.1–0.35 cores for
# the first minutes after every start, on a box whose 2 cores serve the whole stack; the broker
# itself needs ~0.05 cores at 300 orders/s (docs/performance.md, fifth round). Empty: full JIT.
# KAFKA_JAVA: the Java >= 17 cluster/services.sh chose (Kafka 4.1 needs it), else `java`.
# shellcheck disable=SC2086
exec "${KAFKA_JAVA:-java}" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 ${KAFKA_JIT_OPTS--XX:TieredStopAtLevel=1} \
  -Djava.awt.headless=true \
  -Dlog4j2.configurationFile="$here/log4j2.yaml" -Dkafka.logs.dir="$logs" \
  -cp "$home/libs/*" kafka.Kafka "$conf"
