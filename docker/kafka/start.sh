#!/usr/bin/env bash
# Entry point of the Kafka broker of docker-compose.yml and k8s/infra/kafka.yaml (image
# ray-orders-kafka:4.1.1, docker/kafka/Dockerfile): apache/kafka with SASL/SCRAM-SHA-512 on every
# SASL listener (docs/adr/ADR-011-kafka-auth.md).
#  1. server.properties from the KAFKA_* environment, rendered as the image's own entry point
#     renders it (KAFKA_FOO_BAR -> foo.bar, __ -> _, ___ -> -), plus SCRAM: the mechanism and,
#     for each SASL listener, the broker's own login (its inter-broker connections);
#  2. on the first start, the storage formatted with the SCRAM user KAFKA_USERNAME and its
#     password KAFKA_PASSWORD: KRaft keeps the credential in its metadata log, so no client can
#     connect before it exists. A formatted volume keeps its credential: change the password
#     on the running broker with kafka-configs.sh --bootstrap-server <its SASL listener>
#     --command-config <the client.properties below> --alter --entity-type users --entity-name
#     <user> --add-config 'SCRAM-SHA-512=[password=<new>]', then in the env files or Secret
#     and restart (docs/adr/ADR-011-kafka-auth.md, "Changing the SCRAM password");
#  3. client.properties (mode 600) for the health check and Kafka's tools:
#     --command-config "$BROKER_CONFIG_DIR/client.properties";
#  4. the broker in the foreground (exec), without the password in its environment or argv (the
#     one-time format above has it in its argv, inside this container only).
# BROKER_HOME and BROKER_CONFIG_DIR default to the image's paths (tests/deploy runs this script
# with the Kafka of the local stack).
set -euo pipefail
umask 077 # the rendered files hold the password
: "${KAFKA_USERNAME:?set KAFKA_USERNAME}" "${KAFKA_PASSWORD:?set KAFKA_PASSWORD}"
: "${CLUSTER_ID:?set CLUSTER_ID}" "${KAFKA_LOG_DIRS:?set KAFKA_LOG_DIRS}"
: "${KAFKA_LISTENER_SECURITY_PROTOCOL_MAP:?set KAFKA_LISTENER_SECURITY_PROTOCOL_MAP}"
home="${BROKER_HOME:-/opt/kafka}"
conf="${BROKER_CONFIG_DIR:-/tmp/orders-kafka}"
mechanism=SCRAM-SHA-512
user="$KAFKA_USERNAME" password="$KAFKA_PASSWORD"
# The SCRAM tools and JAAS parse these: keep them to characters that need no quoting.
[[ "$user$password" =~ ^[A-Za-z0-9._~-]+$ ]] || {
  echo "KAFKA_USERNAME and KAFKA_PASSWORD: letters, digits and ._~- only" >&2; exit 1; }
unset KAFKA_USERNAME KAFKA_PASSWORD # never rendered, never inherited by the broker

# Variables the image reads itself, never broker properties (KafkaDockerWrapper).
not_properties=" KAFKA_VERSION KAFKA_HEAP_OPTS KAFKA_LOG4J_OPTS KAFKA_OPTS KAFKA_JMX_OPTS \
KAFKA_JVM_PERFORMANCE_OPTS KAFKA_GC_LOG_OPTS KAFKA_LOG4J_ROOT_LOGLEVEL KAFKA_LOG4J_LOGGERS \
KAFKA_TOOLS_LOG4J_LOGLEVEL KAFKA_JMX_HOSTNAME "
render_environment() {
  local name key
  for name in $(compgen -e); do
    [[ "$name" == KAFKA_* && "$not_properties" != *" $name "* ]] || continue
    key="${name#KAFKA_}"; key="${key,,}"
    key="${key//___/-}"; key="${key//__/:}"; key="${key//_/.}"; key="${key//:/_}"
    printf '%s=%s\n' "$key" "${!name}"
  done
}
jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$user\" password=\"$password\";"
render_sasl() {
  local entry listener protocol found=0
  echo "sasl.enabled.mechanisms=$mechanism"
  echo "sasl.mechanism.inter.broker.protocol=$mechanism"
  for entry in ${KAFKA_LISTENER_SECURITY_PROTOCOL_MAP//,/ }; do
    listener="${entry%%:*}" protocol="${entry#*:}"
    [[ "$protocol" == SASL_* ]] || continue
    echo "listener.name.${listener,,}.${mechanism,,}.sasl.jaas.config=$jaas"
    found=1
  done
  (( found )) || { echo "no SASL listener in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP" >&2; return 1; }
}

mkdir -p "$conf"
render_environment >"$conf/server.properties"
render_sasl >>"$conf/server.properties"
printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=$mechanism" \
  "sasl.jaas.config=$jaas" >"$conf/client.properties"

data="${KAFKA_LOG_DIRS%%,*}"
if [[ ! -f "$data/meta.properties" ]]; then
  echo "kafka: formatting $data with the SCRAM user $user"
  "$home/bin/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" --config "$conf/server.properties" \
    --add-scram "$mechanism=[name=$user,password=$password]"
fi
unset password jaas
exec "$home/bin/kafka-server-start.sh" "$conf/server.properties"
