# shellcheck shell=bash
# Shared helpers for scripts/services.sh. Sourced, not executed.
#
# Expects: HALT_ROOT (repo root), STATE_DIR (<repo>/.services), CACHE_DIR
# (~/.cache/halt) and SERVICES_LIB (this directory) to be set by the caller.

log() { printf 'services: %s\n' "$*" >&2; }
die() {
  printf 'services: error: %s\n' "$*" >&2
  exit 1
}

# Milliseconds since the epoch.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ---------------------------------------------------------------- installing

_APT_UPDATED=0

# Run a command as root: directly when we are root, through `sudo -n` otherwise.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    die "need root (or passwordless sudo) to run: $*"
  fi
}

apt_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# ensure_apt PKG...: install the Debian packages that are not installed yet.
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    apt_installed "$p" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null 2>&1 ||
    die "missing packages ${missing[*]} and no apt-get to install them"
  log "installing Debian packages: ${missing[*]}"
  local aptlog="$STATE_DIR/apt.log"
  if ((!_APT_UPDATED)); then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$aptlog" 2>&1 ||
      { tail -n 20 "$aptlog" >&2; die "apt-get update failed (full log: $aptlog)"; }
    _APT_UPDATED=1
  fi
  # Any system-wide instance a package may start is ignored: we run private
  # instances on ports picked at run time.
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$aptlog" 2>&1 ||
    { tail -n 20 "$aptlog" >&2; die "apt-get install ${missing[*]} failed (full log: $aptlog)"; }
}

# need_cmd CMD HINT: fail with a clear message when a tool is missing.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"
}

# ---------------------------------------------------------------- ports

# helper_py ARGS...: run helpers.py (stdlib only) with a fast-starting
# Python: the system one when present (a pyenv shim costs ~0.3 s a call).
_HELPER_PY=
helper_py() {
  if [[ -z $_HELPER_PY ]]; then
    if [[ -x /usr/bin/python3 ]]; then
      _HELPER_PY=/usr/bin/python3
    else
      command -v python3 >/dev/null 2>&1 || ensure_apt python3
      _HELPER_PY=$(command -v python3)
    fi
  fi
  "$_HELPER_PY" "$SERVICES_LIB/helpers.py" "$@"
}

# free_ports N: print N distinct loopback TCP ports that are free right now.
free_ports() {
  helper_py free-ports "${1:-1}" || die "could not pick free ports"
}

free_port() { free_ports 1; }

port_is_free() { helper_py port-free "$1"; }

# port_clash LOGFILE...: the failed start was a lost race for its port (the
# port picked was taken before the server bound it), so retrying makes sense.
port_clash() { grep -qi 'address already in use' "$@" 2>/dev/null; }

# retry_or_die ATTEMPT MAX WHAT LOGFILE...: after a failed start attempt,
# return (to retry on new ports) if it was a port clash, else die.
retry_or_die() {
  local attempt=$1 max=$2 what=$3
  shift 3
  if ((attempt < max)) && port_clash "$@"; then
    log "$what lost its port to another process; retrying on another port"
    return 0
  fi
  die "$what failed to start (log: $*)"
}

# tcp_open PORT: true when something accepts connections on 127.0.0.1:PORT.
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- processes

# spawn PIDFILE LOGFILE CMD...: start CMD detached (own session, stdin from
# /dev/null, output appended to LOGFILE, no inherited lock fd) and write its
# pid to PIDFILE.
spawn() {
  local pidfile=$1 logfile=$2
  shift 2
  rm -f "$pidfile"
  # shellcheck disable=SC2016
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$logfile" 2>&1 9>&- &
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s $pidfile ]] && return 0
    sleep 0.01
  done
  die "could not start: $* (no pid file $pidfile)"
}

read_pid() { [[ -s $1 ]] && head -n 1 "$1"; }

# pid_alive PIDFILE: the process named in PIDFILE is running (and not a zombie).
pid_alive() {
  local pid state
  pid=$(read_pid "$1") || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z ]]
}

# stop_pid PIDFILE [TIMEOUT_S]: SIGTERM, then SIGKILL after TIMEOUT_S; idempotent.
stop_pid() {
  local pidfile=$1 timeout=${2:-10} pid deadline
  if pid_alive "$pidfile"; then
    pid=$(read_pid "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(($(now_ms) + timeout * 1000))
    while pid_alive "$pidfile" && (($(now_ms) < deadline)); do sleep 0.05; done
    if pid_alive "$pidfile"; then
      log "pid $pid did not stop after ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while pid_alive "$pidfile"; do sleep 0.05; done
    fi
  fi
  rm -f "$pidfile"
}

# kill_pid PIDFILE: SIGKILL and wait until it is gone; keeps the pid file.
kill_pid() {
  local pidfile=$1 pid
  pid_alive "$pidfile" || return 1
  pid=$(read_pid "$pidfile")
  kill -KILL "$pid" 2>/dev/null || true
  while pid_alive "$pidfile"; do sleep 0.02; done
}

# wait_ready WHAT TIMEOUT_S PIDFILE LOGFILE CMD...: poll CMD until it succeeds.
# Fails early (with the log's tail) when the process in PIDFILE dies.
wait_ready() {
  local what=$1 timeout=$2 pidfile=$3 logfile=$4
  shift 4
  local deadline=$(($(now_ms) + timeout * 1000)) delay=0.02
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ -n $pidfile ]] && ! pid_alive "$pidfile"; then
      [[ -f $logfile ]] && tail -n 25 "$logfile" >&2
      die "$what exited during startup (log: $logfile)"
    fi
    if (($(now_ms) >= deadline)); then
      [[ -f $logfile ]] && tail -n 25 "$logfile" >&2
      die "$what not ready after ${timeout}s (log: $logfile)"
    fi
    sleep "$delay"
    [[ $delay == 0.02 ]] && delay=0.05 || delay=0.1
  done
}

# ---------------------------------------------------------------- state

svc_dir() { echo "$STATE_DIR/$1"; }

# write_env NAME LINE...: record the env lines of a started service.
write_env() {
  local name=$1
  shift
  local f
  f="$(svc_dir "$name")/env"
  printf '%s\n' "$@" >"$f.tmp"
  mv "$f.tmp" "$f"
}

drop_env() { rm -f "$(svc_dir "$1")/env"; }

# shell-quote a value for an `export NAME=value` line
qv() { printf '%q' "$1"; }

# _wait_port_free WHAT PORT: wait (up to 5 s) until PORT is free again, e.g. after the server on it was killed.
_wait_port_free() {
  local i
  for ((i = 0; i < 100; i++)); do
    port_is_free "$2" && return 0
    sleep 0.05
  done
  die "cannot restart $1: port $2 is taken by another process"
}
