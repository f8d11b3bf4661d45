# scripts/services.d/s3.sh — an S3-compatible server (versitygw, built once
# with go install) on 127.0.0.1:$S3_PORT, posix backend in the state
# directory. Sourced by scripts/services.

S3_PORT=${VITRINE_SERVICES_S3_PORT:-27070}
VGW_VERSION=${VITRINE_SERVICES_VERSITYGW_VERSION:-v1.8.0}
S3_BUCKET=vitrine
S3_REGION=us-east-1
S3_ACCESS_KEY=vitrine-test-access
S3_SECRET_KEY=vitrine-test-secret-key

VGW_BIN=$CACHE/versitygw-$VGW_VERSION/versitygw

install_s3() {
  [[ -x $VGW_BIN ]] && return 0
  local go tmp
  go=$(go_cmd)
  [[ -n $go ]] || die "s3: building versitygw needs the Go toolchain (go 1.25 or later) on PATH"
  log "building versitygw $VGW_VERSION with go install (a few minutes, once; cached in $(dirname "$VGW_BIN"))"
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/versitygw-build.XXXXXX")
  if ! (cd / && GOBIN=$tmp GOFLAGS=-buildvcs=false GOWORK=off nice -n 10 \
    "$go" install "github.com/versity/versitygw/cmd/versitygw@$VGW_VERSION") >&2; then
    rm -rf "$tmp"
    die "s3: go install github.com/versity/versitygw/cmd/versitygw@$VGW_VERSION failed"
  fi
  mkdir -p "$(dirname "$VGW_BIN")"
  mv "$tmp/versitygw" "$VGW_BIN"
  rm -rf "$tmp"
}


S3_DIR=$STATE/s3

s3_pid() {
  local pid
  pid=$(read_pidfile "$S3_DIR/pid")
  if [[ -n $pid ]] && pid_matches "$pid" versitygw posix "$S3_DIR/data"; then echo "$pid"; fi
}

s3_launch() {
  local meta=()
  mkdir -p "$S3_DIR/data"
  echo "$S3_PORT" >"$S3_DIR/port"
  # Object metadata goes in extended attributes; where the filesystem has
  # none, s3_wait switches to a sidecar directory (remembered in meta-mode).
  if [[ $(cat "$S3_DIR/meta-mode" 2>/dev/null || true) == sidecar ]]; then
    mkdir -p "$S3_DIR/meta"
    meta=(--sidecar "$S3_DIR/meta")
  fi
  log "s3: starting versitygw $VGW_VERSION on 127.0.0.1:$S3_PORT (posix backend, $S3_DIR/data)"
  launch "$S3_DIR/versitygw.log" "$S3_DIR/pid" \
    "$VGW_BIN" --port "127.0.0.1:$S3_PORT" --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" \
    --region "$S3_REGION" posix "${meta[@]}" "$S3_DIR/data"
}

s3_http_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$S3_PORT/" 2>/dev/null || true
}

s3_wait() {
  local deadline=$((SECONDS + TIMEOUT)) pid code
  while :; do
    pid=$(s3_pid)
    if [[ -z $pid ]]; then
      if tail -n 20 "$S3_DIR/versitygw.log" 2>/dev/null | grep -q 'xattr check failed' &&
        [[ $(cat "$S3_DIR/meta-mode" 2>/dev/null || true) != sidecar ]]; then
        log "s3: no extended attributes on $S3_DIR/data; using a sidecar metadata directory"
        echo sidecar >"$S3_DIR/meta-mode"
        s3_launch
        continue
      fi
      tail_log "$S3_DIR/versitygw.log"
      die "s3: versitygw exited while starting (log: $S3_DIR/versitygw.log)"
    fi
    code=$(s3_http_code)
    # Any HTTP status (an unsigned request gets 403) proves an S3 server answers.
    if [[ $code =~ ^[1-5][0-9][0-9]$ ]]; then break; fi
    if ((SECONDS >= deadline)); then
      tail_log "$S3_DIR/versitygw.log"
      die "s3: versitygw not answering on 127.0.0.1:$S3_PORT after ${TIMEOUT}s (log: $S3_DIR/versitygw.log)"
    fi
    sleep 0.1
  done
  check_owner s3 "$S3_PORT" "$pid" VITRINE_SERVICES_S3_PORT
}

s3_stop() {
  local pid
  pid=$(s3_pid)
  [[ -n $pid ]] || return 0
  stop_pid s3 "$pid" TERM 30
}

# The interface scripts/services dispatches to (see its header).
s3_packages() {
  command -v curl >/dev/null 2>&1 || printf '%s\n' curl ca-certificates
  return 0
}
s3_fetch() { install_s3; }
s3_port() { echo "$S3_PORT"; }
s3_port_var() { echo VITRINE_SERVICES_S3_PORT; }
s3_check_ports() { ensure_port_free "$S3_PORT" VITRINE_SERVICES_S3_PORT s3; }
s3_running_port() { cat "$S3_DIR/port" 2>/dev/null || true; }
s3_log() { echo "$S3_DIR/versitygw.log"; }
s3_env() {
  emit VITRINE_S3_ENDPOINT "http://127.0.0.1:$S3_PORT"
  emit VITRINE_S3_BUCKET "$S3_BUCKET"
  emit VITRINE_S3_REGION "$S3_REGION"
  emit VITRINE_S3_ACCESS_KEY_ID "$S3_ACCESS_KEY"
  emit VITRINE_S3_SECRET_ACCESS_KEY "$S3_SECRET_KEY"
  emit VITRINE_S3_PATH_STYLE true
}
s3_reset() { rm -rf "$S3_DIR"; }
