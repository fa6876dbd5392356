#!/usr/bin/env bash
# Provision the real servers Halt's integration tests run against.
#
#   scripts/services.sh start <name>...   install if needed, start, wait until ready, print env lines
#   scripts/services.sh stop [<name>...]  stop (all when no name); idempotent
#   scripts/services.sh restart redis     start redis again on the same port and data dir
#   scripts/services.sh kill redis        SIGKILL redis (for crash tests; then `restart redis`)
#   scripts/services.sh env               print the env of what is running
#   scripts/services.sh status            one line per service
#   scripts/services.sh list              the service names
#
# Services: redis redis-cluster postgres memcached dynamodb mongodb (alias ferretdb).
# Every server listens on 127.0.0.1 on a port picked at run time. State (data,
# pid files, logs) lives in <repo>/.services/<name>/, and the env of all
# running services in <repo>/.services/env as `export NAME=value` lines:
#
#   eval "$(scripts/services.sh start redis postgres)"   # or: . .services/env
#
# Downloads and builds are cached under ~/.cache/halt (HALT_CACHE_DIR).
# Progress goes to stderr; stdout carries only the env lines.
set -euo pipefail

SERVICES_LIB="$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)/services"
HALT_ROOT="$(cd -P "$SERVICES_LIB/../.." && pwd)"
STATE_DIR="${HALT_SERVICES_DIR:-$HALT_ROOT/.services}"
CACHE_DIR="${HALT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/halt}"
export SERVICES_LIB HALT_ROOT STATE_DIR CACHE_DIR

ALL_SERVICES=(redis redis-cluster postgres memcached dynamodb mongodb)

# shellcheck source=services/lib.sh
. "$SERVICES_LIB/lib.sh"
for _s in "${ALL_SERVICES[@]}"; do
  # shellcheck disable=SC1090
  . "$SERVICES_LIB/$_s.sh"
done
unset _s

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

# canonical NAME: validate a service name (accepting aliases).
canonical() {
  case "$1" in
    ferretdb) echo mongodb ;;
    redis | redis-cluster | postgres | memcached | dynamodb | mongodb) echo "$1" ;;
    postgresql) echo postgres ;;
    *) die "unknown service '$1' (known: ${ALL_SERVICES[*]})" ;;
  esac
}

fn() { echo "svc_${1//-/_}_$2"; }

state_of() { "$(fn "$1" state)"; }

# Rewrite .services/env from the env files of the started services.
write_global_env() {
  local s f out="$STATE_DIR/env"
  {
    echo "# Written by scripts/services.sh; source it: . .services/env"
    for s in "${ALL_SERVICES[@]}"; do
      f="$STATE_DIR/$s/env"
      [[ -f $f ]] && cat "$f"
    done
  } >"$out.tmp"
  mv "$out.tmp" "$out"
}

# One invocation at a time may change services (flock on .services/.lock).
take_lock() {
  exec 9>"$STATE_DIR/.lock"
  if ! flock -n 9; then
    log "waiting for another services.sh to finish..."
    flock -w "${HALT_SERVICES_LOCK_TIMEOUT:-900}" 9 || die "timed out waiting for $STATE_DIR/.lock"
  fi
}

init_state() {
  mkdir -p "$STATE_DIR"
}

cmd_start() {
  (($#)) || die "usage: services.sh start <name>... (known: ${ALL_SERVICES[*]})"
  local names=() n
  for n in "$@"; do names+=("$(canonical "$n")"); done
  init_state
  take_lock
  local t0 st
  for n in "${names[@]}"; do
    st=stopped
    [[ -d $STATE_DIR/$n ]] && st=$(state_of "$n")
    if [[ $st == running && -f $STATE_DIR/$n/env ]]; then
      log "$n: already running"
      continue
    fi
    t0=$(now_ms)
    mkdir -p "$STATE_DIR/$n"
    if [[ $st != stopped ]]; then
      log "$n: cleaning up a previous instance (state: $st)"
      "$(fn "$n" stop)"
    fi
    drop_env "$n"
    "$(fn "$n" install)"
    "$(fn "$n" start)"
    write_global_env
    log "$n: ready in $(($(now_ms) - t0))ms"
  done
  write_global_env
  for n in "${names[@]}"; do cat "$STATE_DIR/$n/env"; done
}

cmd_stop() {
  local names=() n
  if (($#)); then
    for n in "$@"; do names+=("$(canonical "$n")"); done
  else
    names=("${ALL_SERVICES[@]}")
  fi
  [[ -d $STATE_DIR ]] || return 0
  take_lock
  for n in "${names[@]}"; do
    [[ -d $STATE_DIR/$n ]] || continue
    if [[ $(state_of "$n") != stopped ]]; then
      "$(fn "$n" stop)"
      log "$n: stopped"
    fi
    drop_env "$n"
  done
  write_global_env
}

cmd_restart() {
  (($#)) || die "usage: services.sh restart redis"
  local names=() n
  for n in "$@"; do names+=("$(canonical "$n")"); done
  init_state
  take_lock
  for n in "${names[@]}"; do
    declare -F "$(fn "$n" restart)" >/dev/null ||
      die "restart is supported for redis, postgres, memcached and mongodb (use stop + start for $n)"
    "$(fn "$n" restart)"
    log "$n: restarted"
  done
  write_global_env
  for n in "${names[@]}"; do cat "$STATE_DIR/$n/env"; done
}

cmd_kill() {
  (($#)) || die "usage: services.sh kill redis"
  local names=() n
  for n in "$@"; do names+=("$(canonical "$n")"); done
  [[ -d $STATE_DIR ]] || { log "nothing is running"; return 0; }
  take_lock
  for n in "${names[@]}"; do
    declare -F "$(fn "$n" kill)" >/dev/null || die "kill is supported for redis, postgres, memcached and mongodb"
    "$(fn "$n" kill)"
  done
}

# env: the env lines of the services that are running (also rewrites .services/env).
cmd_env() {
  [[ -d $STATE_DIR ]] || return 0
  local s
  for s in "${ALL_SERVICES[@]}"; do
    if [[ -f $STATE_DIR/$s/env && $(state_of "$s") == running ]]; then
      cat "$STATE_DIR/$s/env"
    fi
  done
}

cmd_status() {
  local s st
  for s in "${ALL_SERVICES[@]}"; do
    st=stopped
    [[ -d $STATE_DIR/$s ]] && st=$(state_of "$s")
    if [[ $st == stopped ]]; then
      printf '%-14s %s\n' "$s" "$st"
    else
      printf '%-14s %-8s %s\n' "$s" "$st" "$("$(fn "$s" describe)")"
    fi
  done
}

main() {
  (($#)) || usage
  local cmd=$1
  shift
  case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    restart) cmd_restart "$@" ;;
    kill) cmd_kill "$@" ;;
    env) (($# == 0)) || die "usage: services.sh env"; cmd_env ;;
    status) cmd_status ;;
    list) printf '%s\n' "${ALL_SERVICES[@]}" ;;
    -h | --help | help) usage 0 ;;
    *) log "unknown command '$cmd'"; usage ;;
  esac
}

main "$@"
