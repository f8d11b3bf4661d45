# Stand-in for quay.io/coreos/etcd:v3.4.23 (see README.md beside this file).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends etcd-server etcd-client \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etcd-data && chown etcd /etcd-data && chmod 700 /etcd-data
USER etcd
CMD ["etcd"]
