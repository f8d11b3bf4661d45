# scripts/services.d/postgres.sh — PostgreSQL (Debian's postgresql), one
# cluster on 127.0.0.1:$PG_PORT with the role and database vitrine.
# Sourced by scripts/services.

PG_PORT=${VITRINE_SERVICES_PG_PORT:-25432}
PG_USER=vitrine
PG_PASSWORD=vitrine
PG_DB=vitrine

pg_bindir() {
  local d
  d=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n1)
  [[ -n $d ]] && dirname "$d"
}

# as_pg CMD...: run as the PostgreSQL OS user (postgres when we are root).
as_pg() {
  if is_root; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

pg_owner() { if is_root; then echo postgres; else id -un; fi; }

# pg_root: the directory holding data/, run/ and postgres.log; made on first use.
pg_root() {
  local link=$STATE/postgres alt
  if [[ -e $link ]]; then
    (cd "$link" && pwd -P)
    return
  fi
  if ! is_root; then
    mkdir -p "$link"
    (cd "$link" && pwd -P)
    return
  fi
  getent passwd postgres >/dev/null || die "postgres: no 'postgres' OS user (is Debian's postgresql package installed?)"
  if runuser -u postgres -- test -x "$STATE" 2>/dev/null && runuser -u postgres -- test -r "$STATE" 2>/dev/null; then
    mkdir -p "$link"
    chown postgres: "$link"
    (cd "$link" && pwd -P)
    return
  fi
  alt=/var/lib/postgresql/vitrine-services/$(printf '%s' "$STATE" | md5sum | cut -c1-12)
  log "postgres: $STATE is not reachable by the postgres OS user; keeping the cluster in $alt ($link links to it)"
  mkdir -p "$alt"
  chown postgres: "$alt" "$(dirname "$alt")"
  ln -s "$alt" "$link"
  echo "$alt"
}

pg_data() { echo "$(pg_root)/data"; }

# pg_pid: pid of the postmaster of our cluster, if it runs.
pg_pid() {
  local root data pid
  [[ -e $STATE/postgres ]] || return 0
  root=$(pg_root)
  data=$root/data
  [[ -r $data/postmaster.pid ]] || return 0
  pid=$(read_pidfile "$data/postmaster.pid")
  if [[ -n $pid ]] && pid_matches "$pid" postgres "$data"; then
    echo "$pid"
  fi
}

# pg_cluster_procs DATA: pids of processes whose working directory is DATA
# (the postmaster and every backend chdir there).
pg_cluster_procs() {
  local d p
  for d in /proc/[0-9]*; do
    p=$(readlink "$d/cwd" 2>/dev/null) || continue
    [[ $p == "$1" ]] && echo "${d#/proc/}"
  done
  return 0
}

pg_port_running() { sed -n 4p "$(pg_data)/postmaster.pid" 2>/dev/null || true; }

pg_launch() {
  local bin root data run logf owner
  bin=$(pg_bindir)
  root=$(pg_root)
  data=$root/data
  run=$root/run
  logf=$root/postgres.log
  owner=$(pg_owner)
  mkdir -p "$run"
  touch "$logf"
  if is_root; then chown "$owner": "$root" "$run" "$logf"; fi
  if [[ ! -f $data/PG_VERSION ]]; then
    log "postgres: initdb $data ($(basename "$(dirname "$bin")"))"
    rm -rf "$data"
    as_pg "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C \
      --auth-local=trust --auth-host=scram-sha-256 >>"$logf" 2>&1 ||
      {
        tail_log "$logf"
        die "postgres: initdb failed"
      }
    printf "\n# Added by vitrine's scripts/services: settings for the test cluster.\ninclude_if_exists = 'vitrine.conf'\n" |
      as_pg tee -a "$data/postgresql.conf" >/dev/null
  fi
  # Regenerated on every start, so that a changed port takes effect.
  as_pg tee "$data/vitrine.conf" >/dev/null <<EOF
# Written by vitrine's scripts/services on every start; edits are lost.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$run'
max_connections = 200
shared_buffers = 32MB
synchronous_commit = off
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  # The lock files of a killed server (postmaster.pid, the socket's .lock)
  # make PostgreSQL refuse to start while their pid exists, be it a zombie
  # not yet reaped or a recycled pid. They are removed, but only once no
  # live process of the old cluster is left (all of them run in $data).
  if [[ -f $data/postmaster.pid && -z $(pg_pid) ]]; then
    local deadline=$((SECONDS + 15))
    while [[ -n $(pg_cluster_procs "$data") ]] && ((SECONDS < deadline)); do sleep 0.2; done
    if [[ -z $(pg_cluster_procs "$data") ]]; then
      log "postgres: removing the lock files of a server that was killed"
      rm -f "$data/postmaster.pid" "$run"/.s.PGSQL.*.lock
    fi
  fi
  rotate_log "$logf"
  log "postgres: starting on 127.0.0.1:$PG_PORT"
  # -w: pg_ctl returns once the server accepts connections, or fails at
  # once if the postmaster exits (the postmaster runs in its own session).
  as_pg "$bin/pg_ctl" -D "$data" -l "$logf" -w -t "$TIMEOUT" start >/dev/null 9>&- ||
    {
      tail_log "$logf"
      die "postgres: pg_ctl could not start the server on 127.0.0.1:$PG_PORT (log: $logf)"
    }
}

pg_wait() {
  local bin root data run logf deadline pid=""
  bin=$(pg_bindir)
  root=$(pg_root)
  data=$root/data
  run=$root/run
  logf=$root/postgres.log
  local started=$SECONDS seen=0
  deadline=$((SECONDS + TIMEOUT))
  while :; do
    pid=$(pg_pid)
    if [[ -n $pid ]]; then
      seen=1
      "$bin/pg_isready" -q -h "$run" -p "$PG_PORT" -U postgres -d postgres -t 2 >/dev/null 2>&1 && break
    elif ((seen || SECONDS - started > 10)); then
      # The postmaster writes postmaster.pid at once and removes it on exit.
      tail_log "$logf"
      die "postgres: the server exited while starting (log: $logf)"
    fi
    if ((SECONDS >= deadline)); then
      tail_log "$logf"
      die "postgres: not ready on 127.0.0.1:$PG_PORT after ${TIMEOUT}s (log: $logf)"
    fi
    sleep 0.2
  done
  [[ $(pg_port_running) == "$PG_PORT" ]] ||
    die "postgres: our cluster runs on port $(pg_port_running), not $PG_PORT; run 'scripts/services down postgres' first to change VITRINE_SERVICES_PG_PORT"
  check_owner postgres "$PG_PORT" "$pid" VITRINE_SERVICES_PG_PORT
  # Role and database: idempotent, cheap.
  as_pg "$bin/psql" -X -q -h "$run" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<EOF || die "postgres: could not create role/database $PG_USER"
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', '$PG_USER', '$PG_PASSWORD')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', '$PG_DB', '$PG_USER')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_DB') \gexec
EOF
  # Prove the URL we print works: password auth over TCP.
  PGCONNECT_TIMEOUT=5 "$bin/psql" -X -q -At "$(postgres_url)" -c 'SELECT 1' >/dev/null ||
    die "postgres: cannot log in as $PG_USER over TCP on 127.0.0.1:$PG_PORT"
}

pg_stop() {
  local pid
  pid=$(pg_pid)
  [[ -n $pid ]] || return 0
  # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit.
  stop_pid postgres "$pid" INT 60
}

# The interface scripts/services dispatches to (see its header).
postgres_packages() { [[ -n $(pg_bindir) ]] || echo postgresql; }
postgres_fetch() { [[ -n $(pg_bindir) ]] || die "postgresql installed but no initdb under /usr/lib/postgresql/*/bin"; }
postgres_port() { echo "$PG_PORT"; }
postgres_port_var() { echo VITRINE_SERVICES_PG_PORT; }
postgres_check_ports() { ensure_port_free "$PG_PORT" VITRINE_SERVICES_PG_PORT postgres; }
postgres_pid() { pg_pid; }
postgres_running_port() { pg_port_running; }
postgres_log() { echo "$STATE/postgres/postgres.log"; }
postgres_launch() { pg_launch; }
postgres_wait() { pg_wait; }
postgres_stop() { pg_stop; }
postgres_url() { echo "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable"; }
postgres_env() { emit VITRINE_POSTGRES_URL "$(postgres_url)"; }
postgres_reset() {
  local root
  if [[ -e $STATE/postgres ]]; then
    root=$(pg_root)
    rm -rf "$root"
    rm -rf "$STATE/postgres"
  fi
}
