# Stand-in for apache/kafka:3.9.2 (see README.md beside this file); the
# context holds libs/, the jars scripts/services fetches from Maven Central.
FROM debian:bookworm-slim
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 1000 --home-dir /opt/kafka appuser \
 && mkdir -p /opt/kafka/bin /opt/kafka/config /var/lib/kafka/data \
 && chown appuser /opt/kafka/config /var/lib/kafka/data
COPY libs/ /opt/kafka/libs/
COPY kafka-entrypoint.sh /opt/kafka/bin/run.sh
COPY kafka-topics.sh /opt/kafka/bin/kafka-topics.sh
COPY kafka-log4j.properties /opt/kafka/config/log4j.properties
COPY kafka-tools-log4j.properties /opt/kafka/config/tools-log4j.properties
USER appuser
ENTRYPOINT ["/opt/kafka/bin/run.sh"]
