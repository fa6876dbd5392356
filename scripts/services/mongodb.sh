# shellcheck shell=bash
# mongodb: FerretDB (MongoDB wire protocol) with its SQLite backend on
# 127.0.0.1:<free port>. Exported as HALT_TEST_FERRETDB_URL; the name
# HALT_TEST_MONGODB_URL is left for a real MongoDB a developer may provide.
#
# Build: `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` gives
# a binary that panics at start ("Invalid build/version/version.txt file
# content"): the module zip lacks the generated build/version/version.txt.
# So the module source is fetched with `go mod download` (module cache in
# ~/.cache/halt/go/mod), copied, version.txt written, and built with
# `go build`; the binary is cached as ~/.cache/halt/bin/ferretdb-v1.24.2.

FERRETDB_VERSION=v1.24.2
FERRETDB_MODULE=github.com/FerretDB/FerretDB
FERRETDB_READY_TIMEOUT=${HALT_FERRETDB_TIMEOUT:-30}

_fdb_dir() { svc_dir mongodb; }
_fdb_pidfile() { echo "$(_fdb_dir)/ferretdb.pid"; }
_fdb_bin() { echo "$CACHE_DIR/bin/ferretdb-$FERRETDB_VERSION"; }

# _fdb_reports_version BIN: BIN says it is $FERRETDB_VERSION. (Not `BIN --version | grep -q`: grep quits at the
# first match, BIN may then die of SIGPIPE, and under pipefail a good binary would count as bad and be rebuilt.)
_fdb_reports_version() {
  local out
  out=$("$1" --version 2>/dev/null) || return 1
  [[ $'\n'$out$'\n' == *$'\n'"version: $FERRETDB_VERSION"$'\n'* ]]
}

svc_mongodb_install() {
  local bin
  bin=$(_fdb_bin)
  if [[ -x $bin ]] && _fdb_reports_version "$bin"; then
    return 0
  fi
  need_cmd go "Go is needed to build FerretDB $FERRETDB_VERSION (see https://go.dev/doc/install)"
  log "mongodb: building FerretDB $FERRETDB_VERSION with $(go version | awk '{print $3}') (takes a few minutes the first time)"
  mkdir -p "$CACHE_DIR/bin" "$CACHE_DIR/go" "$CACHE_DIR/ferretdb"
  local blog="$CACHE_DIR/ferretdb/build.log" src="$CACHE_DIR/ferretdb/src-$FERRETDB_VERSION" moddir
  (
    # -modcacherw keeps ~/.cache/halt removable with a plain rm -rf.
    export GOMODCACHE="$CACHE_DIR/go/mod" GOFLAGS="-modcacherw -buildvcs=false" GOWORK=off
    cd "$CACHE_DIR/go" || exit 1
    moddir=$(go mod download -json "$FERRETDB_MODULE@$FERRETDB_VERSION" |
      python3 -c 'import json, sys; d = json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error", "no Dir")))') ||
      exit 1
    rm -rf "$src" && cp -R "$moddir" "$src" && chmod -R u+w "$src" &&
      printf '%s\n' "$FERRETDB_VERSION" >"$src/build/version/version.txt" &&
      cd "$src" && go build -trimpath -o "$bin.tmp" ./cmd/ferretdb
  ) >"$blog" 2>&1 || {
    tail -n 20 "$blog" >&2
    rm -rf "$src" "$bin.tmp"
    die "building FerretDB $FERRETDB_VERSION failed (log: $blog)"
  }
  rm -rf "$src"
  mv "$bin.tmp" "$bin"
  _fdb_reports_version "$bin" ||
    die "built FerretDB binary $bin does not report version $FERRETDB_VERSION"
}

ferretdb_ping() { helper_py mongo-ping 127.0.0.1 "$1"; }

_fdb_launch() {
  local port=$1 dir url
  dir=$(_fdb_dir)
  mkdir -p "$dir/data" "$dir/state"
  url="file:$(helper_py url-quote "$dir/data")/"
  spawn "$(_fdb_pidfile)" "$dir/ferretdb.log" \
    "$(_fdb_bin)" --handler=sqlite --sqlite-url="$url" \
    --listen-addr="127.0.0.1:$port" --state-dir="$dir/state" \
    --debug-addr=- --telemetry=disable --log-level="${HALT_FERRETDB_LOG_LEVEL:-warn}"
  wait_ready "FerretDB on port $port" "$FERRETDB_READY_TIMEOUT" "$(_fdb_pidfile)" \
    "$dir/ferretdb.log" ferretdb_ping "$port"
}

svc_mongodb_start() {
  local dir port attempt
  dir=$(_fdb_dir)
  rm -rf "$dir/data"
  for attempt in 1 2 3; do
    port=$(free_port)
    echo "$port" >"$dir/port"
    : >"$dir/ferretdb.log"
    if (_fdb_launch "$port"); then break; fi
    svc_mongodb_stop
    retry_or_die "$attempt" 3 FerretDB "$dir/ferretdb.log"
  done
  write_env mongodb "export HALT_TEST_FERRETDB_URL=mongodb://127.0.0.1:$port/"
}

svc_mongodb_stop() { stop_pid "$(_fdb_pidfile)" 10; }

svc_mongodb_state() {
  if pid_alive "$(_fdb_pidfile)"; then echo running
  elif [[ -f "$(_fdb_dir)/env" ]]; then echo dead
  else echo stopped; fi
}

svc_mongodb_describe() {
  printf 'port=%s pid=%s impl=ferretdb-%s/sqlite' "$(cat "$(_fdb_dir)/port" 2>/dev/null)" \
    "$(read_pid "$(_fdb_pidfile)" || echo -)" "$FERRETDB_VERSION"
}

# restart: start FerretDB again on the same port and data (after `kill`, for crash tests).
svc_mongodb_restart() {
  local dir port
  dir=$(_fdb_dir)
  [[ -f $dir/env && -s $dir/port ]] || die "mongodb was not started; run: services.sh start mongodb"
  port=$(cat "$dir/port")
  svc_mongodb_stop
  _wait_port_free FerretDB "$port"
  echo "--- services.sh restart $(date '+%F %T')" >>"$dir/ferretdb.log"
  _fdb_launch "$port"
}

svc_mongodb_kill() {
  if kill_pid "$(_fdb_pidfile)"; then log "FerretDB killed with SIGKILL (restart with: services.sh restart mongodb)"; else log "FerretDB is not running"; fi
}
