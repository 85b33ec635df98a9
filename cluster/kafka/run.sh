#!/usr/bin/env bash
# Runs the Kafka broker in the foreground as this very process (exec), so the pid recorded by
# cluster/services.sh is the JVM's own: stopping or SIGKILLing that pid stops the broker.
#   cluster/kafka/run.sh KAFKA_HOME CONF LOGS_DIR
set -euo pipefail
home="$1" conf="$2" logs="$3"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
  -Dlog4j2.configurationFile="$here/log4j2.yaml" -Dkafka.logs.dir="$logs" \
  -cp "$home/libs/*" kafka.Kafka "$conf"
