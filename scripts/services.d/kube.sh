# scripts/services.d/kube.sh — a Kubernetes API server for the Kubernetes
# tests (`make test-kube`): kube-apiserver $KUBE_VERSION, built once from the
# k8s.io/kubernetes module (deploy/kube-apiserver, its own module) into
# ${VITRINE_TOOLS:-~/.cache/vitrine-tools}/kube-apiserver-$KUBE_VERSION/, on
# an etcd (Debian's etcd-server) of its own. Both listen on 127.0.0.1 only:
# the API on $KUBE_PORT (TLS), its etcd on $KUBE_ETCD_PORT/$KUBE_ETCD_PEER_PORT.
# Authorization is RBAC; the admin is a static token in group system:masters;
# ServiceAccount tokens (TokenRequest, `kubectl create token`) are signed by
# a key made at launch. Each `up` starts from empty state: a test fixture,
# not a cluster to keep. No controller manager, scheduler or kubelet: objects
# are stored, admitted and validated, nothing runs them.
# Not among the five services `scripts/services up` starts by default: name it.
# Sourced by scripts/services.

KUBE_VERSION=v1.34.4 # k8s.io/kubernetes, as deploy/kube-apiserver/go.mod requires
KUBE_PORT=${VITRINE_SERVICES_KUBE_PORT:-26443}
KUBE_ETCD_PORT=${VITRINE_SERVICES_KUBE_ETCD_PORT:-22479}
KUBE_ETCD_PEER_PORT=${VITRINE_SERVICES_KUBE_ETCD_PEER_PORT:-22480}
KUBE_DIR=$STATE/kube
KUBE_BIN_DIR=${VITRINE_TOOLS:-${HOME:-/tmp}/.cache/vitrine-tools}/kube-apiserver-$KUBE_VERSION
KUBE_BIN=$KUBE_BIN_DIR/kube-apiserver
KUBE_SRC=$(cd "$SERVICES_D/../../deploy/kube-apiserver" && pwd)

kube_pid() {
  local pid
  pid=$(read_pidfile "$KUBE_DIR/pid")
  if [[ -n $pid ]] && pid_matches "$pid" kube-apiserver "$KUBE_DIR/"; then echo "$pid"; fi
}

kube_etcd_pid() {
  local pid
  pid=$(read_pidfile "$KUBE_DIR/etcd.pid")
  if [[ -n $pid ]] && pid_matches "$pid" etcd "$KUBE_DIR/etcd"; then echo "$pid"; fi
}

# kube_fetch builds kube-apiserver once (about 10 minutes cold on 2 cores).
kube_fetch() {
  [[ -x $KUBE_BIN ]] && return 0
  local go tmp start=$SECONDS
  go=$(go_cmd)
  [[ -n $go ]] || die "kube: building kube-apiserver needs Go"
  grep -q "k8s.io/kubernetes $KUBE_VERSION\$" "$KUBE_SRC/go.mod" ||
    die "kube: $KUBE_SRC/go.mod does not require k8s.io/kubernetes $KUBE_VERSION"
  log "kube: building kube-apiserver $KUBE_VERSION from $KUBE_SRC into $KUBE_BIN_DIR (about 10 minutes on 2 cores, once)"
  mkdir -p "$(dirname "$KUBE_BIN_DIR")"
  tmp=$(mktemp -d "$KUBE_BIN_DIR.XXXXXX")
  local minor=${KUBE_VERSION#v1.}
  minor=${minor%%.*}
  (cd "$KUBE_SRC" && GOWORK=off GOFLAGS=-buildvcs=false "$go" build -trimpath \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION" \
    -o "$tmp/kube-apiserver" .) >&2 || {
    rm -rf "$tmp"
    die "kube: building kube-apiserver failed"
  }
  rm -rf "$KUBE_BIN_DIR" && mv "$tmp" "$KUBE_BIN_DIR"
  log "kube: kube-apiserver built in $((SECONDS - start)) s"
}

# kube_certs DIR: a CA, the API server's certificate for 127.0.0.1 and
# localhost, the ServiceAccount token signing key, the admin token.
kube_certs() {
  local d=$1
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=vitrine-test-kube-ca \
      -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >"$d/apiserver.ext"
    openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
      -extfile "$d/apiserver.ext" -out "$d/apiserver.crt" 2>/dev/null
    openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
    openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
    openssl rand -hex 24 >"$d/admin.token"
    printf '%s,admin,admin,system:masters\n' "$(cat "$d/admin.token")" >"$d/tokens.csv"
  ) || die "kube: making the keys with openssl failed"
}

kube_launch() {
  # Fresh state at every launch.
  rm -rf "$KUBE_DIR/etcd" "$KUBE_DIR/pki"
  mkdir -p "$KUBE_DIR"
  mkdir -p -m 700 "$KUBE_DIR/etcd" "$KUBE_DIR/pki"
  kube_certs "$KUBE_DIR/pki"
  echo "$KUBE_PORT" >"$KUBE_DIR/port"
  log "kube: starting etcd on 127.0.0.1:$KUBE_ETCD_PORT and kube-apiserver $KUBE_VERSION on https://127.0.0.1:$KUBE_PORT"
  launch "$KUBE_DIR/etcd.log" "$KUBE_DIR/etcd.pid" \
    etcd --name vitrine-kube --data-dir "$KUBE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$KUBE_ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$KUBE_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$KUBE_ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$KUBE_ETCD_PEER_PORT" \
    --initial-cluster "vitrine-kube=http://127.0.0.1:$KUBE_ETCD_PEER_PORT" \
    --initial-cluster-state new --logger zap --log-level warn
  local p=$KUBE_DIR/pki
  # kube-apiserver retries etcd until it answers.
  launch "$KUBE_DIR/kube-apiserver.log" "$KUBE_DIR/pid" \
    "$KUBE_BIN" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$KUBE_PORT" \
    --cert-dir "$KUBE_DIR/pki" --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --etcd-servers "http://127.0.0.1:$KUBE_ETCD_PORT" \
    --authorization-mode RBAC --token-auth-file "$p/tokens.csv" --anonymous-auth=false \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range 10.96.0.0/24 --allow-privileged=false \
    --profiling=false --v 1
}

# kube_api PATH: GET PATH as the admin (curl), body on stdout.
kube_api() {
  curl -s --max-time 3 --cacert "$KUBE_DIR/pki/ca.crt" \
    -H "Authorization: Bearer $(cat "$KUBE_DIR/pki/admin.token")" "https://127.0.0.1:$KUBE_PORT$1" 2>/dev/null || true
}

# kube_alive PIDFILE: its process is alive. (Not pid_matches: while a
# process just launched execs its program, its command line can read empty,
# and a check that fell there took a starting kube-apiserver for dead.)
kube_alive() {
  local pid
  pid=$(read_pidfile "$1")
  [[ -n $pid ]] && pid_alive "$pid"
}

kube_wait() {
  local deadline=$((SECONDS + TIMEOUT * 2)) pid
  while :; do
    if ! kube_alive "$KUBE_DIR/pid" || ! kube_alive "$KUBE_DIR/etcd.pid"; then
      tail_log "$KUBE_DIR/etcd.log"
      tail_log "$KUBE_DIR/kube-apiserver.log"
      die "kube: etcd or kube-apiserver exited while starting (logs: $KUBE_DIR)"
    fi
    # ok once etcd answers and the bootstrap (RBAC roles, priority levels) is done.
    if [[ $(kube_api /readyz) == ok ]]; then break; fi
    if ((SECONDS >= deadline)); then
      tail_log "$KUBE_DIR/kube-apiserver.log"
      die "kube: not ready on https://127.0.0.1:$KUBE_PORT after $((TIMEOUT * 2))s (log: $KUBE_DIR/kube-apiserver.log)"
    fi
    sleep 0.2
  done
  pid=$(kube_pid)
  check_owner kube "$KUBE_PORT" "$pid" VITRINE_SERVICES_KUBE_PORT
  check_owner kube "$KUBE_ETCD_PORT" "$(kube_etcd_pid)" VITRINE_SERVICES_KUBE_ETCD_PORT
  kube_kubeconfig
}

# kube_kubeconfig writes the admin's kubeconfig.
kube_kubeconfig() {
  (
    umask 077
    cat >"$KUBE_DIR/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: vitrine-test
    cluster:
      server: https://127.0.0.1:$KUBE_PORT
      certificate-authority: $KUBE_DIR/pki/ca.crt
users:
  - name: admin
    user:
      token: $(cat "$KUBE_DIR/pki/admin.token")
contexts:
  - name: vitrine-test
    context: {cluster: vitrine-test, user: admin}
current-context: vitrine-test
EOF
  )
}

kube_stop() {
  local pid
  pid=$(kube_pid)
  [[ -z $pid ]] || stop_pid kube-apiserver "$pid" TERM 30
  pid=$(kube_etcd_pid)
  [[ -z $pid ]] || stop_pid "kube's etcd" "$pid" TERM 30
  return 0
}

# The interface scripts/services dispatches to (see its header).
kube_packages() {
  command -v etcd >/dev/null 2>&1 || echo etcd-server
  command -v kubectl >/dev/null 2>&1 || echo kubernetes-client
  command -v openssl >/dev/null 2>&1 || echo openssl
  command -v unshare >/dev/null 2>&1 || echo util-linux
  command -v curl >/dev/null 2>&1 || printf '%s\n' curl ca-certificates
  return 0
}
kube_port() { echo "$KUBE_PORT"; }
kube_port_var() { echo VITRINE_SERVICES_KUBE_PORT; }
kube_check_ports() {
  ensure_port_free "$KUBE_PORT" VITRINE_SERVICES_KUBE_PORT kube
  ensure_port_free "$KUBE_ETCD_PORT" VITRINE_SERVICES_KUBE_ETCD_PORT kube
  ensure_port_free "$KUBE_ETCD_PEER_PORT" VITRINE_SERVICES_KUBE_ETCD_PEER_PORT kube
}
kube_running_port() { cat "$KUBE_DIR/port" 2>/dev/null || true; }
kube_log() { echo "$KUBE_DIR/kube-apiserver.log"; }
kube_env() {
  emit KUBECONFIG "$KUBE_DIR/admin.kubeconfig"
  emit VITRINE_KUBE_SERVER "https://127.0.0.1:$KUBE_PORT"
  emit VITRINE_KUBE_CA "$KUBE_DIR/pki/ca.crt"
  emit VITRINE_KUBE_TOKEN_FILE "$KUBE_DIR/pki/admin.token"
}
kube_reset() { rm -rf "$KUBE_DIR"; }
