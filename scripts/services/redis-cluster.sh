# shellcheck shell=bash
# redis-cluster: a 3-master Redis Cluster (no replicas) on free loopback ports.
#
# Each node gets a free client port and a free cluster-bus port (set with
# cluster-port, so ports above 55535 work too). Nodes live in
# .services/redis-cluster/node{1,2,3}; every start creates a new cluster.

RCLUSTER_READY_TIMEOUT=${HALT_REDIS_CLUSTER_TIMEOUT:-30}
RCLUSTER_NODES=3

_rcluster_dir() { svc_dir redis-cluster; }

svc_redis_cluster_install() { svc_redis_install; }

_rcluster_ports() { cat "$(_rcluster_dir)/ports" 2>/dev/null; }

# _rcluster_cluster_ok PORT...: every node reports a healthy, complete cluster.
_rcluster_cluster_ok() {
  local p info
  for p in "$@"; do
    info=$(redis-cli -h 127.0.0.1 -p "$p" cluster info 2>/dev/null) || return 1
    [[ $info == *cluster_state:ok* ]] || return 1
    [[ $info == *cluster_slots_ok:16384* ]] || return 1
    [[ $info == *"cluster_known_nodes:$#"* ]] || return 1
  done
}

_rcluster_launch() {
  local dir=$1
  shift
  local ports=("$@") i port bus ndir
  for ((i = 0; i < RCLUSTER_NODES; i++)); do
    port=${ports[i]}
    bus=${ports[i + RCLUSTER_NODES]}
    ndir="$dir/node$((i + 1))"
    mkdir -p "$ndir"
    spawn "$ndir/redis.pid" "$ndir/redis.log" \
      redis-server --port "$port" --cluster-port "$bus" --bind 127.0.0.1 \
      --protected-mode yes --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 5000 --dir "$ndir" --daemonize no --save "" \
      --appendonly no --logfile ""
  done
  for ((i = 0; i < RCLUSTER_NODES; i++)); do
    ndir="$dir/node$((i + 1))"
    wait_ready "redis-cluster node $((i + 1)) on port ${ports[i]}" "$RCLUSTER_READY_TIMEOUT" \
      "$ndir/redis.pid" "$ndir/redis.log" redis_ping "${ports[i]}"
  done
  local addrs=()
  for ((i = 0; i < RCLUSTER_NODES; i++)); do addrs+=("127.0.0.1:${ports[i]}"); done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
    >"$dir/create.log" 2>&1 || {
    tail -n 20 "$dir/create.log" >&2
    return 1
  }
  wait_ready "redis-cluster (cluster_state:ok on all nodes)" "$RCLUSTER_READY_TIMEOUT" \
    "$dir/node1/redis.pid" "$dir/create.log" \
    _rcluster_cluster_ok "${ports[@]:0:RCLUSTER_NODES}"
}

svc_redis_cluster_start() {
  local dir attempt ports out
  dir=$(_rcluster_dir)
  for attempt in 1 2 3; do
    rm -rf "$dir"/node*
    out=$(free_ports $((2 * RCLUSTER_NODES)))
    mapfile -t ports <<<"$out"
    printf '%s\n' "${ports[@]:0:RCLUSTER_NODES}" >"$dir/ports"
    if (_rcluster_launch "$dir" "${ports[@]}"); then break; fi
    svc_redis_cluster_stop
    retry_or_die "$attempt" 3 redis-cluster "$dir"/node*/redis.log
  done
  local nodes="" p
  for p in "${ports[@]:0:RCLUSTER_NODES}"; do nodes+="${nodes:+,}127.0.0.1:$p"; done
  write_env redis-cluster "export HALT_TEST_REDIS_CLUSTER_NODES=$nodes"
}

svc_redis_cluster_stop() {
  local dir f
  dir=$(_rcluster_dir)
  for f in "$dir"/node*/redis.pid; do
    [[ -e $f ]] && stop_pid "$f" 10
  done
  return 0
}

svc_redis_cluster_state() {
  local dir i alive=0
  dir=$(_rcluster_dir)
  for ((i = 1; i <= RCLUSTER_NODES; i++)); do
    pid_alive "$dir/node$i/redis.pid" && alive=$((alive + 1))
  done
  if ((alive == RCLUSTER_NODES)); then echo running
  elif ((alive > 0)) || [[ -f $dir/env ]]; then echo dead
  else echo stopped; fi
}

svc_redis_cluster_describe() {
  local dir i pids=""
  dir=$(_rcluster_dir)
  for ((i = 1; i <= RCLUSTER_NODES; i++)); do
    pids+="${pids:+,}$(read_pid "$dir/node$i/redis.pid" || echo -)"
  done
  printf 'ports=%s pids=%s' "$(_rcluster_ports | paste -sd, -)" "$pids"
}
