# shellcheck shell=bash
# dynamodb: a DynamoDB-compatible HTTP endpoint on 127.0.0.1:<free port>.
#
# Amazon's DynamoDB Local (software.amazon.dynamodb:DynamoDBLocal) is under
# the vendor's own licence terms, which this project does not take on, so the
# endpoint is served by moto's server mode (Apache-2.0, PyPI: moto), which
# implements the DynamoDB JSON API (DynamoDB_20120810.*) in memory. It runs
# through moto_serial.py, which serves one request at a time: moto's own
# server checks a condition and writes without a lock (DynamoDB is atomic).
# The pinned Python environment (dynamodb-requirements.txt) is installed once
# into ~/.cache/halt/dynamodb/venv-<hash>, from wheels kept in
# ~/.cache/halt/dynamodb/wheels.
# Any access key / secret and region are accepted.

DYNAMODB_READY_TIMEOUT=${HALT_DYNAMODB_TIMEOUT:-30}

_ddb_dir() { svc_dir dynamodb; }
_ddb_pidfile() { echo "$(_ddb_dir)/dynamodb.pid"; }
_ddb_reqs() { echo "$SERVICES_LIB/dynamodb-requirements.txt"; }

# The venv path depends on the pinned requirements and the Python version, so
# a change of either builds a new one. Computed once per run (python3 may be
# a slow pyenv shim).
_DDB_VENV=
_ddb_venv() {
  if [[ -z $_DDB_VENV ]]; then
    local hash
    hash=$({ cat "$(_ddb_reqs)"; python3 -c 'import sys; print(sys.version)'; } | md5sum | cut -c1-10)
    _DDB_VENV="$CACHE_DIR/dynamodb/venv-$hash"
  fi
}

svc_dynamodb_install() {
  command -v curl >/dev/null 2>&1 || ensure_apt curl
  need_cmd python3 "python3 (3.9+) is needed to run the DynamoDB emulator"
  _ddb_venv
  local venv=$_DDB_VENV
  # .halt-ok is written last, so a half-done install is never taken as done.
  if [[ -f $venv/.halt-ok && -x $venv/bin/moto_server ]] && "$venv/bin/python" -c '' 2>/dev/null; then
    return 0
  fi
  log "dynamodb: installing moto server into $venv"
  python3 -c 'import venv, ensurepip' 2>/dev/null || ensure_apt python3-venv
  rm -rf "$venv"
  local wheels="$CACHE_DIR/dynamodb/wheels" ilog="$CACHE_DIR/dynamodb/install.log"
  mkdir -p "$wheels"
  # Wheels are kept in ~/.cache/halt/dynamodb/wheels, then installed from
  # there only; a marker per requirements hash skips the index look-ups.
  local marker
  marker="$wheels/.complete-$(basename "$venv")"
  if ! {
    python3 -m venv "$venv" &&
      { [[ -f $marker ]] ||
        { "$venv/bin/pip" download --disable-pip-version-check -q -d "$wheels" -r "$(_ddb_reqs)" &&
          touch "$marker"; }; } &&
      "$venv/bin/pip" install --disable-pip-version-check -q --no-index --find-links "$wheels" \
        -r "$(_ddb_reqs)" &&
      "$venv/bin/python" -c 'import moto.server, moto.dynamodb, flask, flask_cors'
  } >"$ilog" 2>&1; then
    tail -n 20 "$ilog" >&2
    rm -rf "$venv"
    die "installing moto failed (log: $ilog)"
  fi
  touch "$venv/.halt-ok"
}

# dynamodb_list_tables PORT: a DynamoDB ListTables call answers {"TableNames": [...]}.
dynamodb_list_tables() {
  local out
  out=$(curl -sS --max-time 2 -X POST "http://127.0.0.1:$1/" \
    -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
    -H 'X-Amz-Date: 20240101T000000Z' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=halt/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=00' \
    -d '{}') || return 1
  [[ $out == *'"TableNames"'* ]]
}

_ddb_launch() {
  local port=$1 dir venv
  dir=$(_ddb_dir)
  _ddb_venv
  venv=$_DDB_VENV
  spawn "$(_ddb_pidfile)" "$dir/dynamodb.log" \
    "$venv/bin/python" "$SERVICES_LIB/moto_serial.py" -H 127.0.0.1 -p "$port"
  wait_ready "dynamodb on port $port" "$DYNAMODB_READY_TIMEOUT" "$(_ddb_pidfile)" \
    "$dir/dynamodb.log" dynamodb_list_tables "$port"
}

svc_dynamodb_start() {
  local dir port attempt
  dir=$(_ddb_dir)
  for attempt in 1 2 3; do
    port=$(free_port)
    echo "$port" >"$dir/port"
    : >"$dir/dynamodb.log"
    if (_ddb_launch "$port"); then break; fi
    svc_dynamodb_stop
    retry_or_die "$attempt" 3 dynamodb "$dir/dynamodb.log"
  done
  write_env dynamodb "export HALT_TEST_DYNAMODB_URL=http://127.0.0.1:$port"
}

svc_dynamodb_stop() { stop_pid "$(_ddb_pidfile)" 10; }

svc_dynamodb_state() {
  if pid_alive "$(_ddb_pidfile)"; then echo running
  elif [[ -f "$(_ddb_dir)/env" ]]; then echo dead
  else echo stopped; fi
}

svc_dynamodb_describe() {
  printf 'port=%s pid=%s impl=moto' "$(cat "$(_ddb_dir)/port" 2>/dev/null)" \
    "$(read_pid "$(_ddb_pidfile)" || echo -)"
}
