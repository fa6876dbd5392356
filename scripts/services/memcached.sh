# shellcheck shell=bash
# memcached: Debian memcached on 127.0.0.1:<free port>, TCP only, 64 MiB.

MEMCACHED_READY_TIMEOUT=${HALT_MEMCACHED_TIMEOUT:-15}

_mc_dir() { svc_dir memcached; }
_mc_pidfile() { echo "$(_mc_dir)/memcached.pid"; }

svc_memcached_install() {
  command -v memcached >/dev/null 2>&1 || ensure_apt memcached
  need_cmd memcached "install the Debian package memcached"
}

# memcached_version PORT: speak the text protocol: `version` -> `VERSION x.y.z`.
memcached_version() {
  local reply
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'version\r\n' >&3
  IFS= read -r -t 2 reply <&3 || { exec 3>&-; return 1; }
  exec 3>&-
  [[ $reply == VERSION* ]]
}

_mc_launch() {
  local port=$1 dir user=()
  dir=$(_mc_dir)
  [[ $(id -u) -eq 0 ]] && user=(-u root)
  spawn "$(_mc_pidfile)" "$dir/memcached.log" \
    memcached -l 127.0.0.1 -p "$port" -U 0 -m "${HALT_MEMCACHED_MB:-64}" -c 1024 "${user[@]}"
  wait_ready "memcached on port $port" "$MEMCACHED_READY_TIMEOUT" "$(_mc_pidfile)" \
    "$dir/memcached.log" memcached_version "$port"
}

svc_memcached_start() {
  local dir port attempt
  dir=$(_mc_dir)
  for attempt in 1 2 3; do
    port=$(free_port)
    echo "$port" >"$dir/port"
    : >"$dir/memcached.log"
    if (_mc_launch "$port"); then break; fi
    svc_memcached_stop
    retry_or_die "$attempt" 3 memcached "$dir/memcached.log"
  done
  write_env memcached "export HALT_TEST_MEMCACHED_URL=127.0.0.1:$port"
}

svc_memcached_stop() { stop_pid "$(_mc_pidfile)" 10; }

svc_memcached_state() {
  if pid_alive "$(_mc_pidfile)"; then echo running
  elif [[ -f "$(_mc_dir)/env" ]]; then echo dead
  else echo stopped; fi
}

svc_memcached_describe() {
  printf 'port=%s pid=%s' "$(cat "$(_mc_dir)/port" 2>/dev/null)" \
    "$(read_pid "$(_mc_pidfile)" || echo -)"
}

# restart: start memcached again on the same port (after `kill`, for crash tests). Items are gone: memcached keeps none.
svc_memcached_restart() {
  local dir port
  dir=$(_mc_dir)
  [[ -f $dir/env && -s $dir/port ]] || die "memcached was not started; run: services.sh start memcached"
  port=$(cat "$dir/port")
  svc_memcached_stop
  _wait_port_free memcached "$port"
  echo "--- services.sh restart $(date '+%F %T')" >>"$dir/memcached.log"
  _mc_launch "$port"
}

svc_memcached_kill() {
  if kill_pid "$(_mc_pidfile)"; then log "memcached killed with SIGKILL (restart with: services.sh restart memcached)"; else log "memcached is not running"; fi
}
