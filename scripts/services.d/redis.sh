# scripts/services.d/redis.sh — Redis (Debian's redis-server) on
# 127.0.0.1:$REDIS_PORT, with an append-only file in the state directory.
# Sourced by scripts/services.

REDIS_PORT=${VITRINE_SERVICES_REDIS_PORT:-26379}

REDIS_DIR=$STATE/redis

redis_pid() {
  local pid
  pid=$(read_pidfile "$REDIS_DIR/pid")
  if [[ -n $pid ]] && pid_matches "$pid" redis-server; then echo "$pid"; fi
}

redis_launch() {
  mkdir -p "$REDIS_DIR/data"
  echo "$REDIS_PORT" >"$REDIS_DIR/port"
  log "redis: starting on 127.0.0.1:$REDIS_PORT"
  # AOF (fsync every second) keeps data across down/up; it lives in our dir.
  launch "$REDIS_DIR/redis.log" "$REDIS_DIR/pid" \
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR/data" \
    --daemonize no --protected-mode yes --logfile '' --save '' \
    --appendonly yes --appendfsync everysec --maxmemory 256mb --maxmemory-policy noeviction
}

redis_cli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

redis_wait() {
  local deadline=$((SECONDS + TIMEOUT)) pid info
  while :; do
    pid=$(redis_pid)
    [[ -n $pid ]] || {
      tail_log "$REDIS_DIR/redis.log"
      die "redis: the server exited while starting (log: $REDIS_DIR/redis.log)"
    }
    if [[ $(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; then break; fi
    if ((SECONDS >= deadline)); then
      tail_log "$REDIS_DIR/redis.log"
      die "redis: not ready on 127.0.0.1:$REDIS_PORT after ${TIMEOUT}s (log: $REDIS_DIR/redis.log)"
    fi
    sleep 0.1
  done
  check_owner redis "$REDIS_PORT" "$pid" VITRINE_SERVICES_REDIS_PORT
  info=$(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info server | tr -d '\r')
  grep -qx "process_id:$pid" <<<"$info" ||
    die "redis: 127.0.0.1:$REDIS_PORT is answered by redis $(grep '^process_id:' <<<"$info"), not by ours (pid $pid); set VITRINE_SERVICES_REDIS_PORT to a free port"
}

redis_stop() {
  local pid
  pid=$(redis_pid)
  [[ -n $pid ]] || return 0
  # SIGTERM: redis flushes the AOF and exits.
  stop_pid redis "$pid" TERM 30
}

# The interface scripts/services dispatches to (see its header).
redis_packages() {
  command -v redis-server >/dev/null 2>&1 || echo redis-server
  command -v redis-cli >/dev/null 2>&1 || echo redis-tools
  return 0
}
redis_fetch() { :; }
redis_port() { echo "$REDIS_PORT"; }
redis_port_var() { echo VITRINE_SERVICES_REDIS_PORT; }
redis_check_ports() { ensure_port_free "$REDIS_PORT" VITRINE_SERVICES_REDIS_PORT redis; }
redis_running_port() { cat "$REDIS_DIR/port" 2>/dev/null || true; }
redis_log() { echo "$REDIS_DIR/redis.log"; }
redis_env() { emit VITRINE_REDIS_URL "redis://127.0.0.1:$REDIS_PORT/0"; }
redis_reset() { rm -rf "$REDIS_DIR"; }
