# shellcheck shell=bash
# postgres: a private PostgreSQL cluster (initdb) in .services/postgres, run
# with Debian's server binaries -- never the system cluster. Listens on
# 127.0.0.1:<free port> plus a unix socket dir of its own; trust auth for
# local connections; database halt_test is dropped and re-created on every
# start. When running as root the server runs as the `postgres` OS user.
#
# If the postgres user cannot reach .services (e.g. a checkout under /root),
# the cluster lives in /tmp/halt-services-<hash>/postgres instead and
# .services/postgres/external points there.

PG_READY_TIMEOUT=${HALT_POSTGRES_TIMEOUT:-60}
PG_DB=halt_test

_pg_dir() { svc_dir postgres; }

_pg_bindir() {
  local d
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1)
  [[ -n $d && -x $d/initdb && -x $d/postgres && -x $d/pg_ctl ]] || return 1
  echo "$d"
}

svc_postgres_install() {
  if ! _pg_bindir >/dev/null || ! command -v psql >/dev/null 2>&1; then
    ensure_apt postgresql postgresql-client
  fi
  _pg_bindir >/dev/null || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin"
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "OS user 'postgres' missing (it comes with the Debian postgresql package)"
  fi
}

_pg_root_mode() { [[ $(id -u) -eq 0 ]]; }

# Run a command as the cluster's owner (postgres when we are root), from /.
_pg_as_owner() {
  if _pg_root_mode; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

# The directory holding data/, sock/ and postgres.log (see header).
_pg_home() {
  local dir home hash
  dir=$(_pg_dir)
  if [[ -s $dir/home ]]; then
    cat "$dir/home"
    return
  fi
  home=$dir
  if _pg_root_mode; then
    chown postgres: "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      hash=$(printf '%s' "$STATE_DIR" | md5sum | cut -c1-12)
      home="${TMPDIR:-/tmp}/halt-services-$hash/postgres"
      mkdir -p "$home"
      chmod 755 "$(dirname "$home")"
      chown postgres: "$home"
      ln -sfn "$home" "$dir/external"
      log "postgres user cannot write $dir; cluster lives in $home"
    fi
  fi
  echo "$home" >"$dir/home"
  echo "$home"
}

# Unix socket dir: inside the cluster home unless that path is too long for
# a socket name (108 bytes), then a short dir under /tmp.
_pg_sockdir() {
  local home=$1 s
  s="$home/sock"
  if ((${#s} + 20 > 100)); then
    s="${TMPDIR:-/tmp}/halt-pg-$(printf '%s' "$home" | md5sum | cut -c1-12)"
  fi
  echo "$s"
}

_pg_pidfile() { echo "$(_pg_home)/data/postmaster.pid"; }

_pg_initdb() {
  local bindir=$1 home=$2 major
  major=$(basename "$(dirname "$bindir")")
  if [[ -f $home/data/PG_VERSION && $(cat "$home/data/PG_VERSION") == "$major" ]]; then
    return 0
  fi
  rm -rf "$home/data"
  mkdir -p "$home/data"
  _pg_root_mode && chown postgres: "$home/data"
  log "postgres: initdb (PostgreSQL $major) in $home/data"
  _pg_as_owner "$bindir/initdb" -D "$home/data" -U postgres --auth=trust \
    -E UTF8 --no-locale --no-sync >"$home/initdb.log" 2>&1 ||
    { tail -n 20 "$home/initdb.log" >&2; die "initdb failed (log: $home/initdb.log)"; }
  printf "\ninclude_if_exists = 'halt.conf'\n" >>"$home/data/postgresql.conf"
}

# _pg_conf_str VALUE: a postgresql.conf string literal
_pg_conf_str() { printf "'%s'" "${1//\'/\'\'}"; }

_pg_launch() {
  local bindir=$1 home=$2 port=$3 sock
  sock=$(_pg_sockdir "$home")
  mkdir -p "$sock"
  _pg_root_mode && chown postgres: "$sock"
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = $(_pg_conf_str "$sock")"
    echo "max_connections = 200"
    echo "fsync = off"
    echo "synchronous_commit = off"
    echo "full_page_writes = off"
  } >"$home/data/halt.conf"
  _pg_root_mode && chown postgres: "$home/data/halt.conf"
  : >"$home/postgres.log"
  _pg_root_mode && chown postgres: "$home/postgres.log"
  _pg_as_owner "$bindir/pg_ctl" -D "$home/data" -l "$home/postgres.log" \
    -w -t "$PG_READY_TIMEOUT" start </dev/null >"$home/pg_ctl.log" 2>&1 9>&- || {
    tail -n 20 "$home/postgres.log" >&2
    return 1
  }
  wait_ready "postgres on port $port" "$PG_READY_TIMEOUT" "$(_pg_pidfile)" "$home/postgres.log" \
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres
}

svc_postgres_start() {
  local dir bindir home port attempt
  dir=$(_pg_dir)
  bindir=$(_pg_bindir)
  home=$(_pg_home)
  _pg_initdb "$bindir" "$home"
  for attempt in 1 2 3; do
    port=$(free_port)
    echo "$port" >"$dir/port"
    if (_pg_launch "$bindir" "$home" "$port"); then break; fi
    svc_postgres_stop
    retry_or_die "$attempt" 3 postgres "$home/postgres.log"
  done
  PGOPTIONS="-c client_min_messages=warning" "$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB" >/dev/null ||
    die "could not create database $PG_DB"
  write_env postgres \
    "export HALT_TEST_POSTGRES_URL=$(qv "postgres://postgres@127.0.0.1:$port/$PG_DB")"
}

svc_postgres_stop() {
  local bindir home
  [[ -s "$(_pg_dir)/home" ]] || return 0
  home=$(_pg_home)
  [[ -f $home/data/postmaster.pid ]] || return 0
  if pid_alive "$home/data/postmaster.pid"; then
    bindir=$(_pg_bindir) || true
    if [[ -n $bindir ]]; then
      _pg_as_owner "$bindir/pg_ctl" -D "$home/data" -m fast -w -t 30 stop \
        </dev/null >>"$home/pg_ctl.log" 2>&1 9>&- || true
    fi
  fi
  if pid_alive "$home/data/postmaster.pid"; then
    local pid
    pid=$(read_pid "$home/data/postmaster.pid")
    log "postgres (pid $pid) did not stop cleanly; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  fi
  return 0
}

svc_postgres_state() {
  if [[ -s "$(_pg_dir)/home" ]] && pid_alive "$(_pg_pidfile)"; then echo running
  elif [[ -f "$(_pg_dir)/env" ]]; then echo dead
  else echo stopped; fi
}

svc_postgres_describe() {
  local pid=-
  [[ -s "$(_pg_dir)/home" ]] && pid=$(read_pid "$(_pg_pidfile)" || echo -)
  printf 'port=%s pid=%s data=%s' "$(cat "$(_pg_dir)/port" 2>/dev/null)" "$pid" \
    "$(cat "$(_pg_dir)/home" 2>/dev/null || echo -)/data"
}

# restart: start PostgreSQL again on the same port and data (after `kill`, for crash tests; it recovers from its WAL).
svc_postgres_restart() {
  local dir port
  dir=$(_pg_dir)
  [[ -f $dir/env && -s $dir/port ]] || die "postgres was not started; run: services.sh start postgres"
  port=$(cat "$dir/port")
  svc_postgres_stop
  _wait_port_free postgres "$port"
  _pg_launch "$(_pg_bindir)" "$(_pg_home)" "$port"
}

# kill: SIGKILL the postmaster and its backends (a crash; `restart` recovers).
svc_postgres_kill() {
  local pid
  if [[ -s "$(_pg_dir)/home" ]] && pid_alive "$(_pg_pidfile)"; then
    pid=$(read_pid "$(_pg_pidfile)")
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    log "postgres killed with SIGKILL (restart with: services.sh restart postgres)"
  else
    log "postgres is not running"
  fi
}
