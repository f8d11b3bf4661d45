# scripts/services.d/common.sh — helpers shared by every service of
# scripts/services: logging, pids and ports, launching detached servers,
# Debian packages. Sourced by scripts/services; not meant to run alone.

log() { printf 'services: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# pid_alive PID: the process exists and is not a zombie.
pid_alive() {
  local pid=$1 st
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/stat ]] || return 1
  st=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $st != Z && $st != X ]]
}

cmdline_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# pid_matches PID SUBSTRING...: PID is alive and its command line contains
# every SUBSTRING (guards against a recycled pid).
pid_matches() {
  local pid=$1 cmd s
  shift
  pid_alive "$pid" || return 1
  cmd=$(cmdline_of "$pid")
  for s in "$@"; do
    [[ $cmd == *"$s"* ]] || return 1
  done
}

port_in_use() { [[ -n $(ss -ltnH "sport = :$1" 2>/dev/null) ]]; }

# listen_pids PORT: pids that listen on PORT (only those we may see).
listen_pids() {
  ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true
}

describe_listeners() {
  local out="" p
  for p in $(listen_pids "$1"); do
    out+=" pid $p ($(cmdline_of "$p" | cut -c1-80))"
  done
  printf '%s' "${out:- a process this user cannot see}"
}

# ensure_port_free PORT ENVVAR SERVICE
ensure_port_free() {
  local lo hi
  if ! [[ $1 =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > 65535)); then die "$3: $2=$1 is not a TCP port number"; fi
  if port_in_use "$1"; then
    die "$3: port $1 is already in use by$(describe_listeners "$1"), not by a server this script started; set $2 to a free port"
  fi
  if read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && (($1 >= lo && $1 <= hi)); then
    log "$3: warning: port $1 ($2) lies in the ephemeral port range $lo-$hi; binding it can fail while client connections use it"
  fi
}

# check_owner SERVICE PORT PID ENVVAR: the process listening on PORT is PID.
check_owner() {
  local svc=$1 port=$2 pid=$3 var=$4 pids
  pids=$(listen_pids "$port")
  if [[ -z $pids ]]; then
    port_in_use "$port" || die "$svc: nothing listens on port $port although pid $pid is running"
    is_root && die "$svc: port $port is held by a process this script did not start; set $var to a free port"
    return 0 # not root: cannot see other users' pids; the server-level checks decide
  fi
  grep -qx "$pid" <<<"$pids" ||
    die "$svc: port $port is answered by$(describe_listeners "$port"), not by the $svc this script started (pid $pid); stop that process or set $var to another port"
}

tail_log() {
  local f=$1
  if [[ -f $f ]]; then
    log "last lines of $f:"
    tail -n 30 "$f" | sed 's/^/    /' >&2
  fi
}

# rotate_log FILE: keep logs from growing forever across many runs.
rotate_log() {
  local f=$1
  if [[ -f $f ]] && (($(stat -c %s "$f") > 20 * 1024 * 1024)); then
    mv -f "$f" "$f.1"
  fi
}

# wait_pid_exit PID SECONDS: 0 if it exited in time.
wait_pid_exit() {
  local pid=$1 deadline=$((SECONDS + $2))
  while pid_alive "$pid"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# stop_pid NAME PID SIGNAL SECONDS: signal, wait, escalate to SIGKILL.
stop_pid() {
  local name=$1 pid=$2 sig=$3 secs=$4
  log "stopping $name (pid $pid)"
  kill "-$sig" "$pid" 2>/dev/null || true
  if ! wait_pid_exit "$pid" "$secs"; then
    log "$name (pid $pid) did not exit within ${secs}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_pid_exit "$pid" 10 || die "$name (pid $pid) does not exit"
  fi
}

read_pidfile() {
  if [[ -f $1 ]]; then head -n1 "$1" | tr -dc '0-9'; fi
}

# launch LOGFILE PIDFILE CMD...: start CMD detached (own session, no
# terminal, stdio to LOGFILE, lock fd closed) and record its pid.
launch() {
  local logf=$1 pidf=$2
  shift 2
  rotate_log "$logf"
  printf '\n=== %s: starting %s\n' "$(date -Is)" "$*" >>"$logf"
  setsid nohup "$@" >>"$logf" 2>&1 </dev/null 9>&- &
  echo "$!" >"$pidf"
}

# ---------------------------------------------------------------- install

APT_UPDATED=0
apt_install() {
  (($# > 0)) || return 0
  command -v apt-get >/dev/null 2>&1 || die "missing packages (${*}); no apt-get here, install them yourself"
  local sudo=()
  if ! is_root; then
    command -v sudo >/dev/null 2>&1 || die "missing packages (${*}); run as root or install sudo"
    sudo=(sudo)
  fi
  log "installing Debian packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  if ((APT_UPDATED == 0)); then
    "${sudo[@]}" apt-get update -qq >&2
    APT_UPDATED=1
  fi
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >&2
}


java_major() {
  local v
  v=$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)
  [[ $v == 1.* ]] && v=${v#1.}
  echo "${v%%[.+-]*}"
}

go_cmd() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    echo /usr/local/go/bin/go
  fi
}

