# shellcheck shell=bash
# redis: one standalone Debian redis-server on a free loopback port.
#
# Data lives in .services/redis/data (append-only file, fsync every second),
# so `restart` after `kill` brings back what was acknowledged before the
# last fsync. `start` (from stopped) begins with an empty data dir.

REDIS_READY_TIMEOUT=${HALT_REDIS_TIMEOUT:-20}

_redis_dir() { svc_dir redis; }
_redis_pidfile() { echo "$(_redis_dir)/redis.pid"; }

svc_redis_install() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    ensure_apt redis-server redis-tools
  fi
  need_cmd redis-server "install the Debian package redis-server"
}

redis_ping() { [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]; }

# _redis_launch PORT: start redis-server on PORT with the existing data dir.
_redis_launch() {
  local port=$1 dir
  dir=$(_redis_dir)
  mkdir -p "$dir/data"
  # shellcheck disable=SC2086
  spawn "$(_redis_pidfile)" "$dir/redis.log" \
    redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
    --dir "$dir/data" --daemonize no --save "" \
    --appendonly yes --appendfsync everysec --appendfilename appendonly.aof \
    --logfile "" ${HALT_REDIS_EXTRA_ARGS:-}
  wait_ready "redis on port $port" "$REDIS_READY_TIMEOUT" "$(_redis_pidfile)" "$dir/redis.log" \
    redis_ping "$port"
}

svc_redis_start() {
  local dir port attempt
  dir=$(_redis_dir)
  rm -rf "$dir/data"
  for attempt in 1 2 3; do
    port=$(free_port)
    echo "$port" >"$dir/port"
    : >"$dir/redis.log"
    if (_redis_launch "$port"); then break; fi
    svc_redis_stop
    retry_or_die "$attempt" 3 redis "$dir/redis.log"
  done
  write_env redis \
    "export HALT_TEST_REDIS_URL=$(qv "redis://127.0.0.1:$port")" \
    "export HALT_TEST_REDIS_PORT=$port" \
    "export HALT_TEST_REDIS_PIDFILE=$(qv "$(_redis_pidfile)")"
}

svc_redis_stop() {
  stop_pid "$(_redis_pidfile)" 10
}

svc_redis_state() {
  if pid_alive "$(_redis_pidfile)"; then echo running
  elif [[ -f "$(_redis_dir)/env" ]]; then echo dead
  else echo stopped; fi
}

svc_redis_describe() {
  local dir
  dir=$(_redis_dir)
  printf 'port=%s pid=%s data=%s' "$(cat "$dir/port" 2>/dev/null)" \
    "$(read_pid "$(_redis_pidfile)" || echo -)" "$dir/data"
}

# restart: same port, same data dir (works after `kill` too).
svc_redis_restart() {
  local dir port i
  dir=$(_redis_dir)
  [[ -f $dir/env && -s $dir/port ]] || die "redis was not started; run: services.sh start redis"
  port=$(cat "$dir/port")
  svc_redis_stop
  # The old listener is gone once the process is; wait briefly for the port
  # in case something else is tearing down.
  for ((i = 0; i < 100; i++)); do
    port_is_free "$port" && break
    sleep 0.05
  done
  port_is_free "$port" || die "cannot restart redis: port $port is taken by another process"
  echo "--- services.sh restart $(date '+%F %T')" >>"$dir/redis.log"
  _redis_launch "$port"
}

svc_redis_kill() {
  if kill_pid "$(_redis_pidfile)"; then
    log "redis killed with SIGKILL (restart with: services.sh restart redis)"
  else
    log "redis is not running"
  fi
}
