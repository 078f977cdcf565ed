#!/usr/bin/env bash
# The assignment's validation scenario, automated, against a real cluster or against
# Docker containers standing in for pods and workers:
#
#   k8s/validate.sh --driver kubectl   the kind cluster of k8s/cluster-up.sh, after
#                                      k8s/deploy.sh (StatefulSet raftkv, namespace raftkv)
#   k8s/validate.sh --driver docker    containers raftkv-0..2 + raftkv-client on a
#                                      user-defined network (CI; image from
#                                      k8s/build-image.sh, IMAGE=raftkv:dev)
#
# The steps are the same for both; only how a pod is deleted or a worker stopped differs
# (k8s/lib/driver-<driver>.sh, one set of functions per driver):
#   1. all replicas run, each on its own worker
#   2. a leader is elected; 3 writes and 3 linearizable reads from the client; the
#      client check of the Kubernetes Job (`raftkv smoke`)
#      (docker only) the replicas speak TLS only: no --insecure, a plain-TCP CLI fails
#   3. find the leader through `raftkv status`; delete its pod; time until the next
#      write is acknowledged; a new leader of a higher term serves
#   4. the pod is recreated on its volume and catches up: same applied index and same KV
#      map on every replica (timed)
#   5. stop the leader's worker; reads and writes still work with the majority; start it
#      again; the replica rejoins and catches up (timed)
#   6. (docker only) partition the leader off the network; a new leader is elected and
#      writes continue; heal; the replica catches up (timed)
#   7. scale 3 -> 5 -> 3 under a writer (a loop of `raftkv put`, a new key each, from
#      the client): scale up to 5 (the new pods join by themselves) and wait for 5
#      voters (each new member timed); scale down with k8s/scale.sh 3 (member remove 5
#      and 4, then the pods, then their volumes) and wait for 3 voters; then 0 failed
#      writes, and every acknowledged one on every replica
#   8. wipe a follower's volume and restart it (a writer running again): it rejoins as a
#      new incarnation; timed until it is a voter again and until it has caught up
#   9. every acknowledged write is in every replica's KV map
# Each step prints what it checked; the first failure ends the script with exit code 1
# (and the replicas' last log lines). At the end it prints the timings.
#
# Deleting a pod is a SIGKILL in Docker (`docker rm -f`, a crash) but a SIGTERM on
# Kubernetes (a leader hands over first), so the failover times differ by nature. In
# the kubectl driver the client pod must not share the leader's worker (give it a
# preferred anti-affinity to the replicas): stopping that worker would stop the client.
#
# Needs bash, python3 (JSON) and docker (kind nodes are containers too); the kubectl driver
# also kubectl. Environment: KEEP=1 leaves the Docker containers, network and volumes behind for
# inspection (the next run removes them); IMAGE (docker driver); KUBE_CONTEXT, NAMESPACE
# (kubectl driver); LEADER_TIMEOUT_S, CONVERGE_TIMEOUT_S, WRITE_TIMEOUT_MS, SCALE_TIMEOUT_S
# bound waits. The kubectl driver's scale step needs 5 schedulable workers (k8s/cluster-up.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: k8s/validate.sh --driver docker|kubectl" >&2
  exit 2
}

driver=
while (($# > 0)); do
  case $1 in
    --driver) driver=${2:-}; shift 2 || usage ;;
    --driver=*) driver=${1#--driver=}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
done
[[ $driver == docker || $driver == kubectl ]] || usage
command -v python3 >/dev/null || { echo "validate: python3 is needed to read raftkv's JSON" >&2; exit 1; }

# The names the manifests give (k8s/base): StatefulSet pods, headless Service, ports.
NAMESPACE=${NAMESPACE:-raftkv}
PODS=(raftkv-0 raftkv-1 raftkv-2)
# Step 7 scales to this many replicas and back.
SCALED_REPLICAS=5
PEER_SERVICE=raftkv-peer
CLUSTER_DOMAIN=${CLUSTER_DOMAIN:-cluster.local}
PEER_PORT=7001
CLIENT_PORT=7101
CLIENT_POD=raftkv-client

step() { printf '\n==> %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
fail() {
  printf '\nFAILED: %s\n' "$*" >&2
  exit 1
}

# Milliseconds since the epoch (bash 5's EPOCHREALTIME; its decimal mark follows the locale).
now_ms() {
  if [[ -n ${EPOCHREALTIME:-} ]]; then
    local micros=${EPOCHREALTIME//[.,]/}
    echo $((micros / 1000))
  else
    python3 -c 'import time; print(int(time.time() * 1000))'
  fi
}

# The stable DNS name of a pod, from the headless Service.
fqdn_of() {
  echo "$1.$PEER_SERVICE.$NAMESPACE.svc.$CLUSTER_DOMAIN"
}

endpoint_of() {
  echo "$(fqdn_of "$1"):$CLIENT_PORT"
}

# raftkv ids are StatefulSet ordinals + 1.
pod_of_id() {
  echo "raftkv-$(($1 - 1))"
}

# shellcheck source=k8s/lib/driver-docker.sh
source "k8s/lib/driver-$driver.sh"

WORK=$(mktemp -d)
# Set once the driver starts bringing things up: before that there is nothing to show
# or clean up.
STARTED=0
finish() {
  local status=$?
  writer_kill
  if ((status != 0 && STARTED)); then
    echo >&2
    driver_logs >&2 || true
  fi
  if ((!STARTED)); then
    :
  elif [[ ${KEEP:-0} == 1 ]]; then
    echo "KEEP=1: leaving the $driver resources in place"
  else
    driver_down || true
  fi
  rm -rf "$WORK"
  if ((status == 0)); then
    echo "validation passed ($driver driver)"
  else
    echo "validation FAILED ($driver driver)" >&2
  fi
}
trap finish EXIT
# An interrupted run cleans up too: exiting from these traps runs the EXIT trap.
trap 'exit 130' INT
trap 'exit 143' TERM

# --- reading raftkv's JSON (python3: jq is not everywhere) -----------------------------
# raftkv_json.py leader [excluded ids...] < status  -> "id term" of the leader a majority follows
# raftkv_json.py converged < status                  -> the applied index all replicas share
# raftkv_json.py same-kv dump...                     -> the number of keys, if all maps are equal
# raftkv_json.py holds dump written                  -> checks every "key<TAB>value" is in dump
# raftkv_json.py members < member list               -> "id role incarnation" per member, by id
cat >"$WORK/raftkv_json.py" <<'PY'
import base64, json, sys

def fail(reason):
    print(reason, file=sys.stderr)
    sys.exit(1)

def status_rows():
    rows = json.load(sys.stdin)
    # No node answered: the CLI printed one error document instead of rows.
    if isinstance(rows, dict):
        fail("raftkv status: " + rows.get("error", {}).get("message", str(rows)))
    return rows

def text(encoded):
    # Keys and values come base64 in raftkv's JSON.
    return base64.b64decode(encoded).decode("utf-8", "replace")

command, args = sys.argv[1], sys.argv[2:]
if command == "leader":
    rows = status_rows()
    excluded = {int(arg) for arg in args}
    answering = [row["status"] for row in rows if "status" in row]
    leaders = [s for s in answering if s["role"] == "leader" and s["id"] not in excluded]
    if not leaders:
        fail("no replica reports itself leader" + (f" (ignoring {sorted(excluded)})" if excluded else ""))
    leader = max(leaders, key=lambda s: s["term"])
    following = [s for s in answering if s["leader"] == leader["id"] and s["term"] == leader["term"]]
    if len(following) < len(rows) // 2 + 1:
        fail(f"node {leader['id']} leads term {leader['term']}, but only {len(following)} of {len(rows)} agree")
    print(leader["id"], leader["term"])
elif command == "converged":
    rows = status_rows()
    missing = [f"{row['endpoint']}: {row.get('error')}" for row in rows if "status" not in row]
    if missing:
        fail("not answering: " + "; ".join(missing))
    statuses = [row["status"] for row in rows]
    applied = {s["applied"] for s in statuses}
    if len(applied) != 1 or any(s["commit"] != s["applied"] for s in statuses):
        fail("commit/applied differ: " + ", ".join(f"node {s['id']} {s['commit']}/{s['applied']}" for s in statuses))
    print(applied.pop())
elif command == "same-kv":
    maps = []
    for path in args:
        with open(path) as file:
            maps.append((path, json.load(file)["kv"]))
    for path, kv in maps[1:]:
        if kv != maps[0][1]:
            fail(f"KV maps differ: {maps[0][0]} has {len(maps[0][1])} keys, {path} {len(kv)}")
    print(len(maps[0][1]))
elif command == "holds":
    with open(args[0]) as file:
        kv = {text(pair["key"]): text(pair["value"]) for pair in json.load(file)["kv"]}
    with open(args[1]) as file:
        written = [line.rstrip("\n").split("\t", 1) for line in file if line.strip()]
    wrong = [f"{key}={kv.get(key)!r} (wrote {value!r})" for key, value in written if kv.get(key) != value]
    if wrong:
        fail("acknowledged writes missing or changed: " + ", ".join(wrong))
    print(len(written))
elif command == "members":
    listing = json.load(sys.stdin)
    for member in sorted(listing["members"], key=lambda member: member["id"]):
        print(member["id"], member["role"], member["incarnation"] or "-")
else:
    fail(f"unknown command {command}")
PY
json() {
  python3 "$WORK/raftkv_json.py" "$@"
}

# --- checks shared by the steps ----------------------------------------------------------
# A predicate sets its results in globals and returns 0, or sets REASON and returns 1.
# retry_until polls one until it holds, then fails the step with its last REASON.
REASON=
retry_until() {
  local timeout_s=$1 what=$2
  shift 2
  local deadline=$(($(now_ms) + timeout_s * 1000))
  until "$@"; do
    if (($(now_ms) >= deadline)); then
      fail "$what: not within $timeout_s s: $REASON"
    fi
    sleep 0.2
  done
}

# Writes `raftkv status --output json` to $WORK/status.json. Exit code 5 means an endpoint
# did not answer: its row says so, and the others are still worth reading (a deleted pod
# is down by design here); any other failure sets REASON.
status_rows() {
  local code=0
  cli --output json --timeout-ms 2000 status >"$WORK/status.json" 2>"$WORK/error" || code=$?
  if ((code != 0 && code != 5)); then
    REASON="raftkv status (exit $code): $(cat "$WORK/error" "$WORK/status.json")"
    return 1
  fi
}

# Sets LEADER_ID, LEADER_TERM, LEADER_POD from `raftkv status`, ignoring the given ids.
LEADER_ID= LEADER_TERM= LEADER_POD=
find_leader() {
  local found
  if ! status_rows; then
    return 1
  fi
  if ! found=$(json leader "$@" <"$WORK/status.json" 2>"$WORK/error"); then
    REASON=$(cat "$WORK/error")
    return 1
  fi
  read -r LEADER_ID LEADER_TERM <<<"$found"
  LEADER_POD=$(pod_of_id "$LEADER_ID")
}

# Sets CONVERGED_APPLIED and CONVERGED_KEYS once every replica answers, has applied all it
# knows committed, at one index, and holds the same KV map (from `raftkv dump`).
CONVERGED_APPLIED= CONVERGED_KEYS=
converged() {
  local applied keys pod dumps=()
  if ! status_rows; then
    return 1
  fi
  if ! applied=$(json converged <"$WORK/status.json" 2>"$WORK/error"); then
    REASON=$(cat "$WORK/error")
    return 1
  fi
  for pod in "${PODS[@]}"; do
    if ! cli --output json --timeout-ms 5000 dump --endpoint "$(endpoint_of "$pod")" \
      >"$WORK/dump-$pod.json" 2>"$WORK/error"; then
      REASON="raftkv dump of $pod: $(cat "$WORK/error")"
      return 1
    fi
    dumps+=("$WORK/dump-$pod.json")
  done
  if ! keys=$(json same-kv "${dumps[@]}" 2>"$WORK/error"); then
    REASON=$(cat "$WORK/error")
    return 1
  fi
  CONVERGED_APPLIED=$applied CONVERGED_KEYS=$keys
}

# Every write this run had acknowledged, "key<TAB>value" a line.
: >"$WORK/written"
RUN=$(date +%s)

# put KEY VALUE: one write through the client (riding out an election), which must succeed.
put() {
  local output
  output=$(cli --timeout-ms "$WRITE_TIMEOUT_MS" put "$1" "$2" 2>&1) || fail "put $1: $output"
  printf '%s\t%s\n' "$1" "$2" >>"$WORK/written"
}

# get KEY VALUE: a linearizable read that must return VALUE.
get() {
  local output
  output=$(cli --timeout-ms "$WRITE_TIMEOUT_MS" get "$1" 2>&1) || fail "get $1: $output"
  [[ $output == "$2" ]] || fail "get $1: expected '$2', got '$output'"
  ok "get $1 = $2"
}

# Writes then reads keys validate/<run>/<name>-1..COUNT.
write_and_read() {
  local name=$1 count=$2 n
  for ((n = 1; n <= count; n++)); do
    put "validate/$RUN/$name-$n" "$name-value-$n"
    ok "put validate/$RUN/$name-$n = $name-value-$n"
  done
  for ((n = 1; n <= count; n++)); do
    get "validate/$RUN/$name-$n" "$name-value-$n"
  done
}

show_status() {
  cli --timeout-ms 2000 status 2>&1 | sed 's/^/      /' || true
}

# After a fault: times the next acknowledged write, checks that another node leads in a
# higher term. Sets FAILOVER_MS.
FAILOVER_MS=
failover() {
  local old_id=$1 old_term=$2 started=$3 name=$4
  put "validate/$RUN/$name" "served"
  FAILOVER_MS=$(($(now_ms) - started))
  ok "put validate/$RUN/$name acknowledged $FAILOVER_MS ms after the fault"
  retry_until "$LEADER_TIMEOUT_S" "a new leader" find_leader "$old_id"
  ((LEADER_TERM > old_term)) || fail "node $LEADER_ID leads term $LEADER_TERM, not above the old leader's $old_term"
  ok "node $LEADER_ID ($LEADER_POD) leads term $LEADER_TERM (the old leader, node $old_id, led term $old_term)"
}

# Waits until every replica has caught up; prints and sets CATCH_UP_MS from `started`.
CATCH_UP_MS=
catch_up() {
  local started=$1 what=$2
  retry_until "$CONVERGE_TIMEOUT_S" "$what catches up" converged
  CATCH_UP_MS=$(($(now_ms) - started))
  ok "$what caught up in $CATCH_UP_MS ms: all replicas applied through index $CONVERGED_APPLIED, equal KV maps ($CONVERGED_KEYS keys)"
}

# --- membership and the writer (steps 7 and 8) ------------------------------------------
# Sets MEMBERS ("id role incarnation" a line, in id order) from the leader's member list,
# and notes in SEEN_AT when each id/incarnation/role was first listed.
MEMBERS=
declare -A SEEN_AT=()
member_list() {
  local id role incarnation now
  if ! cli --output json --timeout-ms 2000 member list >"$WORK/members.json" 2>"$WORK/error"; then
    REASON="raftkv member list: $(cat "$WORK/error")"
    return 1
  fi
  if ! MEMBERS=$(json members <"$WORK/members.json" 2>"$WORK/error"); then
    REASON=$(cat "$WORK/error")
    return 1
  fi
  now=$(now_ms)
  while read -r id role incarnation; do
    [[ -n ${SEEN_AT[$id/$incarnation/$role]:-} ]] || SEEN_AT[$id/$incarnation/$role]=$now
  done <<<"$MEMBERS"
}

# first_seen ID ROLE [INCARNATION]: when member list first showed it (ms), or nothing.
first_seen() {
  local key at best= id incarnation role
  for key in "${!SEEN_AT[@]}"; do
    IFS=/ read -r id incarnation role <<<"$key"
    [[ $id == "$1" && $role == "$2" && (-z ${3:-} || $incarnation == "$3") ]] || continue
    at=${SEEN_AT[$key]}
    if [[ -z $best ]] || ((at < best)); then best=$at; fi
  done
  echo "$best"
}

# "N ms" after START, or why there is no figure: the member list is polled every 0.2 s
# or so, and only once the pods are started, so a short learner phase can go unseen.
ms_after() {
  if [[ -n $2 ]]; then echo "$(($2 - $1)) ms"; else echo "too brief for the poll"; fi
}

# voters_are ID...: holds once the configuration is exactly these members, all voters.
voters_are() {
  local expected listed
  member_list || return 1
  expected=$(printf '%s voter\n' "$@")
  listed=$(cut -d' ' -f1,2 <<<"$MEMBERS")
  if [[ $listed != "$expected" ]]; then
    REASON="the members are: $(paste -sd, <<<"$listed"), waiting for voters $*"
    return 1
  fi
}

# The incarnation member ID has in MEMBERS.
incarnation_of() {
  awk -v id="$1" '$1 == id { print $3 }' <<<"$MEMBERS"
}

# rejoined ID OLD: holds once member ID is a voter again under an incarnation other than
# OLD; sets NEW_INCARNATION.
NEW_INCARNATION=
rejoined() {
  local line role incarnation
  member_list || return 1
  line=$(awk -v id="$1" '$1 == id' <<<"$MEMBERS")
  read -r _ role incarnation <<<"$line"
  if [[ $role != voter || $incarnation == "$2" || $incarnation == - ]]; then
    REASON="member $1 is ${line:+a $role, incarnation $incarnation}${line:-not listed}: $(paste -sd, <<<"$MEMBERS")"
    return 1
  fi
  NEW_INCARNATION=$incarnation
}

# A steady writer in the background: `raftkv put` in a loop, one at a time, each with a
# new key validate/<run>/<name>-<n>. Every acknowledged write goes to $WORK/<name>.acked
# ("key<TAB>value"), every failed one to $WORK/<name>.failed (with its error).
WRITER_PID= WRITER_NAME= WRITER_STARTED=
writer_start() {
  WRITER_NAME=$1 WRITER_STARTED=$(now_ms)
  : >"$WORK/$1.acked"
  : >"$WORK/$1.failed"
  rm -f "$WORK/writer.stop"
  (
    n=0
    while [[ ! -e $WORK/writer.stop ]]; do
      n=$((n + 1))
      key="validate/$RUN/$1-$n" value="$1-value-$n"
      if output=$(cli --timeout-ms "$WRITE_TIMEOUT_MS" put "$key" "$value" 2>&1); then
        printf '%s\t%s\n' "$key" "$value" >>"$WORK/$1.acked"
      else
        printf '%s\t%s\n' "$key" "${output//$'\n'/ }" >>"$WORK/$1.failed"
      fi
    done
  ) &
  WRITER_PID=$!
  retry_until "$LEADER_TIMEOUT_S" "the writer's first write" writer_wrote
  ok "writer started: raftkv put validate/$RUN/$1-<n>, one after the other"
}

writer_wrote() {
  [[ -s $WORK/$WRITER_NAME.acked || -s $WORK/$WRITER_NAME.failed ]] || { REASON="nothing written yet"; return 1; }
}

# Stops the writer after its current write and checks that none failed. Sets
# WRITER_ACKED, WRITER_FAILED and WRITER_MS; adds its writes to $WORK/written.
WRITER_ACKED= WRITER_FAILED= WRITER_MS=
writer_stop() {
  touch "$WORK/writer.stop"
  wait "$WRITER_PID" || true
  WRITER_PID=
  WRITER_MS=$(($(now_ms) - WRITER_STARTED))
  WRITER_ACKED=$(wc -l <"$WORK/$WRITER_NAME.acked")
  WRITER_FAILED=$(wc -l <"$WORK/$WRITER_NAME.failed")
  cat "$WORK/$WRITER_NAME.acked" >>"$WORK/written"
  if ((WRITER_FAILED > 0)); then
    fail "the writer: $WRITER_FAILED of $((WRITER_ACKED + WRITER_FAILED)) writes failed: $(head -5 "$WORK/$WRITER_NAME.failed")"
  fi
  ok "writer stopped: $WRITER_ACKED writes acknowledged, 0 failed, in $WRITER_MS ms"
}

# On exit: a writer still running is stopped at once.
writer_kill() {
  if [[ -n ${WRITER_PID:-} ]]; then
    kill "$WRITER_PID" 2>/dev/null || true
    wait "$WRITER_PID" 2>/dev/null || true
    WRITER_PID=
  fi
}

# holds_everywhere FILE: every "key<TAB>value" of FILE is in each replica's last dump.
holds_everywhere() {
  local pod count
  for pod in "${PODS[@]}"; do
    count=$(json holds "$WORK/dump-$pod.json" "$1" 2>&1) || fail "$pod: $count"
    ok "$pod holds all $count $2"
  done
}

# --- the scenario ---------------------------------------------------------------------
driver_check
step "bring up ($driver driver)"
STARTED=1
driver_up

step "all replicas run, each on its own worker"
replicas_on_distinct_workers

step "a leader is elected"
started=$(now_ms)
retry_until "$LEADER_TIMEOUT_S" "a leader" find_leader
ok "node $LEADER_ID ($LEADER_POD) leads term $LEADER_TERM (found after $(($(now_ms) - started)) ms)"

step "3 writes and 3 linearizable reads from the client"
write_and_read initial 3
started=$(now_ms)
put "validate/$RUN/baseline" "one-write"
BASELINE_MS=$(($(now_ms) - started))
ok "one more write, for scale: $BASELINE_MS ms through the $driver exec"

if declare -F tls_enforced >/dev/null; then
  step "mutual TLS only: no plain TCP"
  tls_enforced
fi

step "the Kubernetes Job's check: raftkv smoke"
cli smoke 2>&1 | sed 's/^/    /' || fail "raftkv smoke failed"

step "find the leader through raftkv status"
retry_until "$LEADER_TIMEOUT_S" "a leader" find_leader
show_status
ok "node $LEADER_ID leads term $LEADER_TERM: the leader pod is $LEADER_POD"

step "delete the leader pod $LEADER_POD"
killed_pod=$LEADER_POD
started=$(now_ms)
delete_pod "$killed_pod"
ok "$killed_pod deleted"
failover "$LEADER_ID" "$LEADER_TERM" "$started" after-pod-delete
KILL_TO_WRITE_MS=$FAILOVER_MS
write_and_read during-recreate 2

step "the deleted pod is recreated on its volume and catches up"
recreate_started=$(now_ms)
wait_recreated "$killed_pod"
recreated=$(now_ms)
ok "$killed_pod recreated (container running $((recreated - recreate_started)) ms after the wait began)"
catch_up "$recreated" "$killed_pod"
POD_CATCH_UP_MS=$CATCH_UP_MS

step "stop the leader's worker"
retry_until "$LEADER_TIMEOUT_S" "a leader" find_leader
worker=$(worker_of "$LEADER_POD")
[[ $worker != "$(client_worker)" ]] ||
  fail "the client pod runs on $worker, the leader's worker: stopping it would stop the client too"
stopped_pod=$LEADER_POD
started=$(now_ms)
stop_worker "$worker"
ok "worker $worker of $stopped_pod (node $LEADER_ID, the leader) stopped"

step "the majority still serves reads and writes"
failover "$LEADER_ID" "$LEADER_TERM" "$started" after-worker-stop
WORKER_STOP_TO_WRITE_MS=$FAILOVER_MS
write_and_read worker-down 3
show_status

step "start the worker again: $stopped_pod rejoins and catches up"
started=$(now_ms)
start_worker "$worker"
ok "worker $worker started"
catch_up "$started" "$stopped_pod"
WORKER_CATCH_UP_MS=$CATCH_UP_MS

PARTITION_TO_WRITE_MS= PARTITION_CATCH_UP_MS=
if supports_partition; then
  step "partition the leader off the network"
  retry_until "$LEADER_TIMEOUT_S" "a leader" find_leader
  partitioned_pod=$LEADER_POD
  started=$(now_ms)
  partition "$partitioned_pod"
  ok "$partitioned_pod (node $LEADER_ID, the leader of term $LEADER_TERM) disconnected"
  failover "$LEADER_ID" "$LEADER_TERM" "$started" after-partition
  PARTITION_TO_WRITE_MS=$FAILOVER_MS
  write_and_read partitioned 3
  show_status

  step "heal the partition: $partitioned_pod rejoins and catches up"
  started=$(now_ms)
  heal "$partitioned_pod"
  ok "$partitioned_pod reconnected"
  catch_up "$started" "$partitioned_pod"
  PARTITION_CATCH_UP_MS=$CATCH_UP_MS
else
  step "partition: skipped (the $driver driver cannot partition a pod)"
fi

step "scale 3 -> $SCALED_REPLICAS under a writer"
retry_until "$LEADER_TIMEOUT_S" "3 voters" voters_are 1 2 3
ok "members 1 2 3, all voters"
writer_start scale
new_pods=() new_ids=()
for ((ordinal = ${#PODS[@]}; ordinal < SCALED_REPLICAS; ordinal++)); do
  new_pods+=("raftkv-$ordinal")
  new_ids+=("$((ordinal + 1))")
done
scale_started=$(now_ms)
scale_up "$SCALED_REPLICAS"
ok "scaled to $SCALED_REPLICAS: ${new_pods[*]} started (not in RAFTKV_PEERS: they join by themselves)"
retry_until "$SCALE_TIMEOUT_S" "$SCALED_REPLICAS voters" voters_are $(seq 1 "$SCALED_REPLICAS")
declare -A VOTER_MS=()
for id in "${new_ids[@]}"; do
  voter=$(first_seen "$id" voter)
  VOTER_MS[$id]=$((voter - scale_started))
  ok "node $id ($(pod_of_id "$id")): a voter ${VOTER_MS[$id]} ms after the scale began" \
    "(listed as a learner: $(ms_after "$scale_started" "$(first_seen "$id" learner)"))"
done
cli --timeout-ms 2000 member list 2>&1 | sed 's/^/      /' || true
write_and_read scaled 2

step "scale $SCALED_REPLICAS -> 3 under the writer: k8s/scale.sh 3 (remove the members, then the pods, then their volumes)"
started=$(now_ms)
scale_down 3 || fail "k8s/scale.sh 3 failed"
SCALE_DOWN_MS=$(($(now_ms) - started))
for pod in "${new_pods[@]}"; do
  scaled_away "$pod"
done
ok "${new_pods[*]} and their volumes are gone ($SCALE_DOWN_MS ms)"
retry_until "$SCALE_TIMEOUT_S" "3 voters" voters_are 1 2 3
ok "members 1 2 3, all voters"
writer_stop
SCALE_WRITES=$WRITER_ACKED SCALE_WRITER_MS=$WRITER_MS

step "no write of the scale step is lost"
retry_until "$CONVERGE_TIMEOUT_S" "convergence" converged
ok "all replicas applied through index $CONVERGED_APPLIED, equal KV maps ($CONVERGED_KEYS keys)"
holds_everywhere "$WORK/scale.acked" "writes the writer had acknowledged"

step "wipe a follower's volume and restart it (under a writer)"
retry_until "$LEADER_TIMEOUT_S" "a leader" find_leader
for pod in "${PODS[@]}"; do
  [[ $pod == "$LEADER_POD" ]] || break
done
wiped_pod=$pod wiped_id=$((${pod##*-} + 1))
retry_until "$LEADER_TIMEOUT_S" "3 voters" voters_are 1 2 3
old_incarnation=$(incarnation_of "$wiped_id")
info "node $LEADER_ID leads; the follower $wiped_pod is node $wiped_id, incarnation $old_incarnation"
writer_start wipe
started=$(now_ms)
wipe_replica "$wiped_pod"
restarted=$(now_ms)
ok "$wiped_pod stopped, its volume deleted; started on an empty volume $((restarted - started)) ms later"
retry_until "$SCALE_TIMEOUT_S" "$wiped_pod a voter again" rejoined "$wiped_id" "$old_incarnation"
WIPE_VOTER_MS=$(($(first_seen "$wiped_id" voter "$NEW_INCARNATION") - restarted))
ok "node $wiped_id is a voter again as incarnation $NEW_INCARNATION (was $old_incarnation)," \
  "$WIPE_VOTER_MS ms after its restart (listed as a learner: $(ms_after "$restarted" "$(first_seen "$wiped_id" learner "$NEW_INCARNATION")"))"
cli --timeout-ms 2000 member list 2>&1 | sed 's/^/      /' || true
writer_stop
WIPE_WRITES=$WRITER_ACKED WIPE_WRITER_MS=$WRITER_MS
catch_up "$restarted" "$wiped_pod (empty volume)"
WIPE_CATCH_UP_MS=$CATCH_UP_MS

step "every acknowledged write is on every replica"
retry_until "$CONVERGE_TIMEOUT_S" "convergence" converged
holds_everywhere "$WORK/written" "acknowledged writes of this run"
show_status

step "timings ($driver driver)"
timing() { printf '    %-52s %6s ms\n' "$1" "$2"; }
timing "one write through the $driver exec, for scale" "$BASELINE_MS"
timing "leader pod deleted -> next acknowledged write" "$KILL_TO_WRITE_MS"
timing "recreated pod started -> caught up" "$POD_CATCH_UP_MS"
timing "leader's worker stopped -> next acknowledged write" "$WORKER_STOP_TO_WRITE_MS"
timing "worker started -> its replica caught up" "$WORKER_CATCH_UP_MS"
if [[ -n $PARTITION_TO_WRITE_MS ]]; then
  timing "leader partitioned -> next acknowledged write" "$PARTITION_TO_WRITE_MS"
  timing "partition healed -> replica caught up" "$PARTITION_CATCH_UP_MS"
fi
for id in "${new_ids[@]}"; do
  timing "scale up: scale began -> node $id a voter" "${VOTER_MS[$id]}"
done
timing "scale down: k8s/scale.sh 3, start to end" "$SCALE_DOWN_MS"
timing "wiped replica started empty -> a voter again" "$WIPE_VOTER_MS"
timing "wiped replica started empty -> caught up" "$WIPE_CATCH_UP_MS"
info "writer during scale 3 -> $SCALED_REPLICAS -> 3: $SCALE_WRITES writes acknowledged, 0 failed, in $SCALE_WRITER_MS ms"
info "writer during the wipe and rejoin: $WIPE_WRITES writes acknowledged, 0 failed, in $WIPE_WRITER_MS ms"
info "(each includes the exec of the raftkv calls; a catch-up or a member list is polled every 0.2 s)"
