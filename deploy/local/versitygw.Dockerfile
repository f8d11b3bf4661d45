# Stand-in for versity/versitygw:v1.8.0 (see README.md beside this file);
# the context holds the versitygw binary scripts/services builds.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends busybox \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /bin/busybox /usr/local/bin/wget \
 && mkdir -p /data && chown 10002:10002 /data
COPY versitygw /usr/local/bin/versitygw
USER 10002:10002
ENTRYPOINT ["/usr/local/bin/versitygw"]
