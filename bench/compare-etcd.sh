#!/usr/bin/env bash
# raftkv side by side with etcd (issue 14). Not run by CI (CI only checks it parses).
#
# Starts a 3-member etcd cluster (Debian's etcd, plain HTTP, fsync on: etcd's defaults) and
# a 3-node raftkv cluster (raftkv-node --insecure, its defaults) on loopback,
# each member in its own temp data dir, and runs the same closed-loop workloads on both,
# interleaved (etcd, raftkv, etcd, ...), RUNS times: puts at CLIENTS_PUT clients,
# linearizable gets at CLIENTS_READ clients, 256-byte values, 10,000 uniform random keys.
# The load generators are `raftkv bench` and bench/etcd-load (its own cargo workspace,
# gRPC through the etcd-client crate). Then, on both: kill -9 of the leader while
# FAILOVER_CLIENTS clients put (the time to the first acknowledged put, from the latency
# logs), leader changes during the throughput runs (leader and term before/after each),
# and the members' RSS after PUTS_FOR_RSS puts in fresh clusters. Prints one table of
# medians and writes it to $OUT/compare.md, plus a latency-over-time plot across the leader
# kill ($OUT/latency-across-failover.png, matplotlib in a venv under target/).
#
# Knobs (environment): RUNS (3), DURATION (10 s per point), WARMUP (2 s), CLIENTS_PUT
# ("1 16 64 256"), CLIENTS_READ ("16 64"), PUTS_FOR_RSS (300000), FAILOVER_CLIENTS (4),
# OUT (target/compare-etcd/<timestamp>), SKIP_PLOT (1: no venv, no plot), PORT_BASE (42300:
# the clusters use 30 ports from there), SPREAD_READS (0: raftkv's gets go to the leader, its
# client's default; 1: to every node in turn, as etcd-load's clients balance theirs),
# LEASE_READS (0, or 1: raftkv-node --lease-reads), QUICK=1 (1 run, 3 s points, 1 s warm-up,
# 20,000 puts for RSS: a smoke test of a few minutes). Needs apt-get (as root) only when etcd,
# etcdctl or protoc are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [[ "${QUICK:-0}" == 1 ]]; then
    RUNS=${RUNS:-1} DURATION=${DURATION:-3} WARMUP=${WARMUP:-1} PUTS_FOR_RSS=${PUTS_FOR_RSS:-20000}
fi
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CLIENTS_PUT=${CLIENTS_PUT:-"1 16 64 256"}
CLIENTS_READ=${CLIENTS_READ:-"16 64"}
PUTS_FOR_RSS=${PUTS_FOR_RSS:-300000}
FAILOVER_CLIENTS=${FAILOVER_CLIENTS:-4}
SKIP_PLOT=${SKIP_PLOT:-0}
# LEASE_READS=1 starts raftkv-node with --lease-reads (thesis §6.4.1: the leader serves reads
# under a lease renewed by heartbeats, assuming clock rates within 10%); 0, the default,
# confirms every read with a heartbeat round as etcd's linearizable Range does.
LEASE_READS=${LEASE_READS:-0}
PORT_BASE=${PORT_BASE:-42300}
KEYS=10000
VALUE_BYTES=256
# A failover run: the leader is killed this long after the load starts, and the load goes
# on until FAILOVER_SECS in all (the generators give up after 10 s without any success).
KILL_AFTER_SECS=3
FAILOVER_SECS=10
started_at=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-target/compare-etcd/$started_at}
target=${CARGO_TARGET_DIR:-$root/target}

step() { printf '\n-- %s\n' "$*" >&2; }
fail() { echo "compare-etcd: FAILED: $*" >&2; exit 1; }
log() { echo "$*" >&2; }
raftkv_lease_flag=()
case $LEASE_READS in
    0) ;;
    1) raftkv_lease_flag=(--lease-reads) ;;
    *) fail "LEASE_READS must be 0 or 1, not '$LEASE_READS'" ;;
esac
for knob in RUNS DURATION WARMUP PUTS_FOR_RSS FAILOVER_CLIENTS PORT_BASE; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || fail "$knob must be a positive integer, not '${!knob}'"
done
for clients in $CLIENTS_PUT $CLIENTS_READ; do
    [[ "$clients" =~ ^[1-9][0-9]*$ ]] || fail "client counts must be positive integers, not '$clients'"
done

# The CLI's and the node's TLS exports would make the plain-TCP clients and nodes refuse.
unset RAFTKV_TLS_CERT RAFTKV_TLS_KEY RAFTKV_TLS_CA RAFTKV_TLS_DIR \
      RAFTKV_NODE_TLS_CERT RAFTKV_NODE_TLS_KEY RAFTKV_NODE_TLS_CA RAFTKV_ENDPOINTS RAFTKV_NODE_BIN
export ETCDCTL_API=3

step "tools"
missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || fail "missing ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
etcd_version=$(etcd --version | sed -n 's/^etcd Version: //p')
log "etcd $etcd_version, $(protoc --version), $(python3 --version)"

step "release builds (target dir $target)"
cargo build --release --quiet -p raftkv-node -p raftkv-cli
cargo build --release --quiet --locked --manifest-path bench/etcd-load/Cargo.toml \
    --target-dir "$target/etcd-load"
raftkv=$target/release/raftkv
raftkv_node=$target/release/raftkv-node
etcd_load=$target/etcd-load/release/etcd-load

mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd)
raw=$OUT/raw
work=$(mktemp -d /tmp/compare-etcd.XXXXXX)
# pids[system-member] of the members this script started; cleanup kills exactly those.
declare -A pids=()
cleanup() {
    local status=$?
    for key in "${!pids[@]}"; do kill -9 "${pids[$key]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if ((status == 0)); then
        rm -rf "$work"
    else
        mkdir -p "$OUT/logs"
        cp "$work"/*/*.log "$OUT/logs/" 2>/dev/null || true
        log "compare-etcd: member logs copied to $OUT/logs (data in $work)"
    fi
}
trap cleanup EXIT

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for offset in $(seq 1 3) $(seq 11 13) $(seq 21 23) $(seq 31 33) $(seq 41 43); do
    port_in_use $((PORT_BASE + offset)) && fail "port $((PORT_BASE + offset)) is in use (set PORT_BASE)"
done

etcd_client_port() { echo $((PORT_BASE + $1)); }
etcd_peer_port() { echo $((PORT_BASE + 10 + $1)); }
raftkv_peer_port() { echo $((PORT_BASE + 20 + $1)); }
raftkv_client_port() { echo $((PORT_BASE + 30 + $1)); }
raftkv_http_port() { echo $((PORT_BASE + 40 + $1)); }
etcd_urls=$(for i in 1 2 3; do printf 'http://127.0.0.1:%s,' "$(etcd_client_port $i)"; done)
etcd_urls=${etcd_urls%,}
raftkv_endpoints=$(for i in 1 2 3; do printf '127.0.0.1:%s,' "$(raftkv_client_port $i)"; done)
raftkv_endpoints=${raftkv_endpoints%,}
etcd_cluster=$(for i in 1 2 3; do printf 'e%s=http://127.0.0.1:%s,' $i "$(etcd_peer_port $i)"; done)
etcd_cluster=${etcd_cluster%,}
raftkv_peers=$(for i in 1 2 3; do printf '%s=127.0.0.1:%s,' $i "$(raftkv_peer_port $i)"; done)
raftkv_peers=${raftkv_peers%,}
generation=0   # a fresh pair of clusters gets new data dirs under $work/<generation>

# Starts (or restarts, on its existing data dir) member $2 of system $1.
start_member() {
    local system=$1 i=$2 dir=$work/$generation
    mkdir -p "$dir"
    if [[ $system == etcd ]]; then
        etcd --name "e$i" --data-dir "$dir/etcd-$i" \
            --listen-client-urls "http://127.0.0.1:$(etcd_client_port "$i")" \
            --advertise-client-urls "http://127.0.0.1:$(etcd_client_port "$i")" \
            --listen-peer-urls "http://127.0.0.1:$(etcd_peer_port "$i")" \
            --initial-advertise-peer-urls "http://127.0.0.1:$(etcd_peer_port "$i")" \
            --initial-cluster "$etcd_cluster" --initial-cluster-state new \
            --initial-cluster-token "compare-etcd-$generation" \
            --logger zap --log-outputs stderr >>"$dir/etcd-$i.log" 2>&1 &
    else
        "$raftkv_node" --id "$i" --peers "$raftkv_peers" --cluster-name "compare-etcd-$generation" \
            --listen-peer "127.0.0.1:$(raftkv_peer_port "$i")" \
            --listen-client "127.0.0.1:$(raftkv_client_port "$i")" \
            --listen-http "127.0.0.1:$(raftkv_http_port "$i")" \
            --data-dir "$dir/raftkv-$i" --insecure "${raftkv_lease_flag[@]}" \
            >>"$dir/raftkv-$i.log" 2>&1 &
    fi
    pids[$system-$i]=$!
}

stop_cluster() {
    local system=$1 i
    for i in 1 2 3; do
        kill "${pids[$system-$i]}" 2>/dev/null || true
    done
    for i in 1 2 3; do
        wait "${pids[$system-$i]}" 2>/dev/null || true
        unset "pids[$system-$i]"
    done
}

# `etcdctl endpoint status` / `raftkv status` as JSON into $2 (may be partial: a member down).
status_json() {
    if [[ $1 == etcd ]]; then
        etcdctl --endpoints="$etcd_urls" --command-timeout=3s endpoint status -w json >"$2" 2>/dev/null || true
    else
        "$raftkv" --endpoints "$raftkv_endpoints" --timeout-ms 3000 --output json status >"$2" 2>/dev/null || true
    fi
}

# Prints "<leader endpoint> <highest term>" ("-" when there is no leader).
leader_of() {
    status_json "$1" "$work/status.json"
    python3 bench/compare_etcd.py leader "$1" "$work/status.json"
}

# Waits until all three members answer and one of them leads.
wait_ready() {
    local system=$1 deadline=$((SECONDS + 60)) healthy
    while ((SECONDS < deadline)); do
        if [[ $system == etcd ]]; then
            healthy=$(etcdctl --endpoints="$etcd_urls" --command-timeout=2s endpoint health 2>&1 | grep -c 'is healthy' || true)
        else
            healthy=$("$raftkv" --endpoints "$raftkv_endpoints" --timeout-ms 2000 endpoint health 2>/dev/null \
                | grep -c 'is healthy' || true)
        fi
        if [[ $healthy == 3 && $(leader_of "$system") != -* ]]; then
            return 0
        fi
        sleep 0.5
    done
    fail "$system did not become ready within 60 s (logs: $work/$generation)"
}

start_clusters() {
    generation=$((generation + 1))
    local system i
    for system in etcd raftkv; do
        for i in 1 2 3; do start_member "$system" "$i"; done
    done
    for system in etcd raftkv; do wait_ready "$system"; done
    log "both clusters ready (data in $work/$generation)"
}

# The member index whose client endpoint is $2.
member_of() {
    local i
    for i in 1 2 3; do
        if [[ $2 == *":$(etcd_client_port "$i")" || $2 == *":$(raftkv_client_port "$i")" ]]; then
            echo "$i"
            return
        fi
    done
    fail "no $1 member serves $2"
}

# Runs one load point: load <system> <mix> <clients> <json out> [extra flags...]. Both with
# a 5 s deadline per request (compare_etcd.py counts the failover's requests that hit it).
load() {
    local system=$1 mix=$2 clients=$3 out=$4
    shift 4
    local common=(--clients "$clients" --mix "$mix" --keys "$KEYS" --value-bytes "$VALUE_BYTES")
    if [[ $system == etcd ]]; then
        "$etcd_load" --endpoints "$etcd_urls" --timeout-ms 5000 "${common[@]}" "$@" >"$out" 2>"$out.err"
    else
        # SPREAD_READS=1: raftkv's clients spread their gets over the nodes (followers
        # answer through the leader's ReadIndex), as etcd-load's balance theirs. Off by
        # default: with every member on the same two cores, a follower's forwarded
        # ReadIndex costs more CPU in all than the leader serving the read itself
        # (measured: 35k against 41k gets/s at 64 clients); on separate machines spreading
        # adds the followers' cores.
        if [[ $mix == reads && ${SPREAD_READS:-0} == 1 ]]; then
            common+=(--spread-reads)
        fi
        "$raftkv" --endpoints "$raftkv_endpoints" --timeout-ms 5000 --output json bench "${common[@]}" "$@" \
            >"$out" 2>"$out.err"
    fi
}

summary_line() {
    python3 -c 'import json, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
op = next(iter(s["operations"].values()))
latency = op["latency_ms"]
print("%9.0f ops/s  p50 %s ms  p99 %s ms  errors %d" % (op["ops_per_sec"], latency["p50"], latency["p99"], op["errors"]))' "$1" 2>/dev/null || echo "no summary"
}

load_before=$(cut -d' ' -f1 /proc/loadavg)
cat >"$raw/meta.json" <<EOF
{"started": "$started_at", "etcd_version": "$etcd_version", "runs": $RUNS, "duration": $DURATION,
 "warmup": $WARMUP, "clients_put": "$CLIENTS_PUT", "clients_read": "$CLIENTS_READ",
 "puts_for_rss": $PUTS_FOR_RSS, "failover_clients": $FAILOVER_CLIENTS, "keys": $KEYS,
 "value_bytes": $VALUE_BYTES, "load_before": "$load_before", "cores": $(nproc),
 "spread_reads": ${SPREAD_READS:-0}, "lease_reads": $LEASE_READS}
EOF
log "results in $OUT; load average (1 min) before: $load_before"

step "throughput and latency: $RUNS run(s) of puts at ${CLIENTS_PUT// /\/} clients, linearizable gets at ${CLIENTS_READ// /\/} clients, ${DURATION} s each"
start_clusters
: >"$raw/leaders.tsv"
points=()
for clients in $CLIENTS_PUT; do points+=("writes:$clients"); done
for clients in $CLIENTS_READ; do points+=("reads:$clients"); done
for run in $(seq 1 "$RUNS"); do
    for point in "${points[@]}"; do
        mix=${point%:*} clients=${point#*:}
        for system in etcd raftkv; do
            out=$raw/$system-$mix-$clients-run$run.json
            before=$(leader_of "$system")
            if ! load "$system" "$mix" "$clients" "$out" --duration-secs "$DURATION" --warmup-secs "$WARMUP"; then
                log "  $system $mix $clients clients run $run FAILED: $(tail -n1 "$out.err")"
            fi
            after=$(leader_of "$system")
            echo "$system $mix-$clients $run $before $after" >>"$raw/leaders.tsv"
            log "  run $run  $mix $(printf '%3s' "$clients") clients  $(printf '%-6s' "$system") $(summary_line "$out")$([[ $before == "$after" ]] || echo "  LEADER CHANGED: $before -> $after")"
        done
    done
done

step "failover: kill -9 of the leader while $FAILOVER_CLIENTS clients put, $RUNS run(s)"
for run in $(seq 1 "$RUNS"); do
    for system in etcd raftkv; do
        base=$raw/failover-$system-run$run
        read -r endpoint _ <<<"$(leader_of "$system")"
        [[ $endpoint != - ]] || fail "$system has no leader before failover run $run"
        member=$(member_of "$system" "$endpoint")
        load "$system" writes "$FAILOVER_CLIENTS" "$base.json" --duration-secs "$((FAILOVER_SECS - 1))" \
            --warmup-secs 1 --latency-log "$base.csv" &
        loader=$!
        sleep "$KILL_AFTER_SECS"
        # Bash's own clock (no fork, unlike date), read right before the kill and after it.
        killed_from=$EPOCHREALTIME
        kill -9 "${pids[$system-$member]}"
        echo "$killed_from $EPOCHREALTIME" >"$base.kill"
        wait "${pids[$system-$member]}" 2>/dev/null || true
        wait "$loader" || log "  $system failover run $run: the load generator failed: $(tail -n1 "$base.json.err")"
        log "  run $run  $(printf '%-6s' "$system") killed member $member ($endpoint); $(summary_line "$base.json"); new leader: $(leader_of "$system")"
        start_member "$system" "$member"
        wait_ready "$system"
    done
done
stop_cluster etcd
stop_cluster raftkv

step "memory: RSS of each member in fresh clusters, then after $PUTS_FOR_RSS puts (64 clients)"
start_clusters
sleep 2
for system in etcd raftkv; do
    : >"$raw/rss-$system.tsv"
    for i in 1 2 3; do
        echo "fresh $i $(awk '/^VmRSS:/ {print $2}' "/proc/${pids[$system-$i]}/status")" >>"$raw/rss-$system.tsv"
    done
done
for system in etcd raftkv; do
    load "$system" writes 64 "$raw/rss-load-$system.json" --requests "$PUTS_FOR_RSS" --warmup-secs 0 \
        || fail "$system: the $PUTS_FOR_RSS puts failed: $(tail -n1 "$raw/rss-load-$system.json.err")"
    log "  $(printf '%-6s' "$system") $PUTS_FOR_RSS puts: $(summary_line "$raw/rss-load-$system.json")"
done
sleep 2
for system in etcd raftkv; do
    for i in 1 2 3; do
        echo "loaded $i $(awk '/^VmRSS:/ {print $2}' "/proc/${pids[$system-$i]}/status")" >>"$raw/rss-$system.tsv"
    done
done
stop_cluster etcd
stop_cluster raftkv

load_after=$(cut -d' ' -f1 /proc/loadavg)
python3 - "$raw/meta.json" "$load_after" <<'EOF'
import json, sys
meta = json.load(open(sys.argv[1]))
meta["load_after"] = sys.argv[2]
json.dump(meta, open(sys.argv[1], "w"))
EOF

if [[ $SKIP_PLOT != 1 ]]; then
    step "plot (matplotlib in a venv)"
    venv=$target/compare-etcd-venv
    requirements=bench/compare-etcd.requirements.txt
    stamp="$(sha256sum "$requirements" | cut -d' ' -f1) $(python3 --version 2>&1)"
    if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]]; then
        rm -rf "$venv"
        python3 -m venv "$venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv), or SKIP_PLOT=1"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            --only-binary=:all: --requirement "$requirements"
        echo "$stamp" >"$venv/.stamp"
    fi
    "$venv/bin/python" bench/compare_etcd.py plot "$raw" "$OUT/latency-across-failover.png" >&2
fi

step "results (also in $OUT/compare.md)"
python3 bench/compare_etcd.py report "$raw" "$OUT/compare.md"
