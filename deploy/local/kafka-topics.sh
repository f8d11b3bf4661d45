#!/bin/sh
# Kafka's TopicCommand, as /opt/kafka/bin/kafka-topics.sh of the official image.
exec java -Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties -XX:TieredStopAtLevel=1 \
  -cp "/opt/kafka/libs/*" org.apache.kafka.tools.TopicCommand "$@"
