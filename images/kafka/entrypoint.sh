#!/bin/sh
# Write the broker's settings from KAFKA_* variables (KAFKA_LOG_DIRS=/x -> log.dirs=/x; the
# runtime's own KAFKA_HEAP_OPTS and KAFKA_OPTS are not settings), format the KRaft storage once
# (CLUSTER_ID, or a fixed id: one broker, one cluster per volume), then run the broker.
set -eu
conf=/tmp/server.properties
env | sort | while IFS='=' read -r name value; do
    case "$name" in
        KAFKA_HEAP_OPTS|KAFKA_OPTS) ;;
        KAFKA_*) printf '%s=%s\n' "$(echo "${name#KAFKA_}" | tr 'A-Z_' 'a-z.')" "$value" ;;
    esac
done > "$conf"
java_cmd() {
    # shellcheck disable=SC2086  # the heap options are words
    exec_or_run=$1; shift
    $exec_or_run java $KAFKA_HEAP_OPTS ${KAFKA_OPTS:-} -Djava.awt.headless=true -XX:+ExitOnOutOfMemoryError \
        -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties -Dkafka.logs.dir=/tmp \
        -cp '/opt/kafka/libs/*' "$@"
}
log_dir=$(sed -n 's/^log\.dirs=//p' "$conf")
if [ -n "$log_dir" ] && [ ! -s "$log_dir/meta.properties" ]; then
    mkdir -p "$log_dir"
    java_cmd command kafka.tools.StorageTool format -t "${CLUSTER_ID:-cGluc3RhY2stbWFuYWdlZA}" -c "$conf"
fi
java_cmd exec kafka.Kafka "$conf"
