# scripts/services.d/etcd.sh — etcd (Debian's etcd-server), one member on
# 127.0.0.1: client port $ETCD_PORT, peer port $ETCD_PEER_PORT, data in the
# state directory. vitrine's nodes register in it (protoactor's etcd
# cluster provider). Sourced by scripts/services.

ETCD_PORT=${VITRINE_SERVICES_ETCD_PORT:-22379}
ETCD_PEER_PORT=${VITRINE_SERVICES_ETCD_PEER_PORT:-22380}
ETCD_DIR=$STATE/etcd
# The release Debian 12 ships (etcd-server); docker-compose.yml names the
# same (quay.io/coreos/etcd:v$ETCD_VERSION), scripts/validate-deploy checks it.
ETCD_VERSION=3.4.23

etcd_pid() {
  local pid
  pid=$(read_pidfile "$ETCD_DIR/pid")
  if [[ -n $pid ]] && pid_matches "$pid" etcd "$ETCD_DIR/data"; then echo "$pid"; fi
}

etcd_launch() {
  mkdir -p "$ETCD_DIR"
  # etcd refuses a data directory others may read.
  mkdir -p -m 700 "$ETCD_DIR/data"
  echo "$ETCD_PORT $ETCD_PEER_PORT" >"$ETCD_DIR/port"
  log "etcd: starting on 127.0.0.1:$ETCD_PORT (peer 127.0.0.1:$ETCD_PEER_PORT)"
  # One member; the peer URL is fixed when the data directory is made, so
  # a changed peer port needs 'scripts/services reset etcd'. Compaction
  # keeps the lease and key churn of many test clusters small.
  launch "$ETCD_DIR/etcd.log" "$ETCD_DIR/pid" \
    etcd --name vitrine-services --data-dir "$ETCD_DIR/data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "vitrine-services=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state new \
    --auto-compaction-mode revision --auto-compaction-retention 1000 \
    --logger zap --log-level warn
}

etcd_health() {
  curl -s --max-time 3 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null || true
}

etcd_wait() {
  local deadline=$((SECONDS + TIMEOUT)) pid
  while :; do
    pid=$(etcd_pid)
    [[ -n $pid ]] || {
      tail_log "$ETCD_DIR/etcd.log"
      die "etcd: the server exited while starting (log: $ETCD_DIR/etcd.log)"
    }
    # {"health":"true"} once the member has a leader and serves requests.
    if [[ $(etcd_health) == *'"health":"true"'* ]]; then break; fi
    if ((SECONDS >= deadline)); then
      tail_log "$ETCD_DIR/etcd.log"
      die "etcd: not ready on 127.0.0.1:$ETCD_PORT after ${TIMEOUT}s (log: $ETCD_DIR/etcd.log)"
    fi
    sleep 0.1
  done
  check_owner etcd "$ETCD_PORT" "$pid" VITRINE_SERVICES_ETCD_PORT
  check_owner etcd "$ETCD_PEER_PORT" "$pid" VITRINE_SERVICES_ETCD_PEER_PORT
}

etcd_stop() {
  local pid
  pid=$(etcd_pid)
  [[ -n $pid ]] || return 0
  stop_pid etcd "$pid" TERM 30
}

# The interface scripts/services dispatches to (see its header).
etcd_packages() {
  command -v etcd >/dev/null 2>&1 || echo etcd-server
  command -v curl >/dev/null 2>&1 || printf '%s\n' curl ca-certificates
  return 0
}
etcd_fetch() {
  local v
  v=$(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p')
  [[ $v == "$ETCD_VERSION" ]] || log "etcd: warning: the installed etcd is $v, not $ETCD_VERSION (docker-compose.yml's)"
}
etcd_port() { echo "$ETCD_PORT"; }
etcd_port_var() { echo VITRINE_SERVICES_ETCD_PORT; }
etcd_check_ports() {
  ensure_port_free "$ETCD_PORT" VITRINE_SERVICES_ETCD_PORT etcd
  ensure_port_free "$ETCD_PEER_PORT" VITRINE_SERVICES_ETCD_PEER_PORT etcd
}
etcd_running_port() { cut -d' ' -f1 "$ETCD_DIR/port" 2>/dev/null || true; }
etcd_log() { echo "$ETCD_DIR/etcd.log"; }
etcd_env() { emit VITRINE_ETCD_ENDPOINTS "127.0.0.1:$ETCD_PORT"; }
etcd_reset() { rm -rf "$ETCD_DIR"; }
