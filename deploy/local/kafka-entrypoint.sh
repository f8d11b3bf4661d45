#!/bin/sh
# As the official image: every KAFKA_* variable (but the JVM's) becomes a
# line of server.properties (KAFKA_LOG_DIRS -> log.dirs; __ -> _, ___ -> -);
# the storage is formatted with CLUSTER_ID on the first start.
set -eu
props=/opt/kafka/config/server.properties
env | grep '^KAFKA_' | while IFS='=' read -r name value; do
  case $name in
  KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_LOG4J_OPTS | KAFKA_JMX_OPTS | KAFKA_GC_LOG_OPTS | KAFKA_VERSION) continue ;;
  esac
  key=$(echo "${name#KAFKA_}" | tr 'A-Z' 'a-z' | sed 's/___/-/g; s/__/@/g; s/_/./g; s/@/_/g')
  printf '%s=%s\n' "$key" "$value"
done >"$props"
cp="/opt/kafka/libs/*"
logdirs=$(sed -n 's/^log\.dirs=//p' "$props")
if [ ! -f "${logdirs%%,*}/meta.properties" ]; then
  java -Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties -cp "$cp" \
    kafka.tools.StorageTool format --ignore-formatted -t "${CLUSTER_ID:?CLUSTER_ID is required}" -c "$props"
fi
# shellcheck disable=SC2086 # the options are words
exec java ${KAFKA_HEAP_OPTS:--Xmx1g -Xms1g} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
  -Djava.awt.headless=true -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties \
  ${KAFKA_OPTS:-} -cp "$cp" kafka.Kafka "$props"
