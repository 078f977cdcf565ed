#!/usr/bin/env bash
# Scales the raftkv StatefulSet to N replicas, changing the Raft membership with it.
#
#   k8s/scale.sh N
#
# Up (N above the current count): `kubectl scale statefulset raftkv --replicas N`; the new
# pods join by themselves (each asks the leader to add it as a learner, and to promote it
# once caught up). The script first refuses if a new ordinal still has a volume claim
# holding a removed member's state, then waits until members 1..N are all voters.
#
# Down (N below the current count): remove first, then scale, then delete the volumes:
#   1. every member 1..N must be a voter and answer at its client address, following the
#      leader (do not shrink while a member that stays is down or still joining);
#   2. `raftkv member remove ID` for each member with an id above N, highest first, one
#      at a time, each waiting for the leader to commit it (run with `kubectl exec` in
#      the client pod raftkv-client; the image has no shell, so the binary directly);
#   3. `kubectl scale statefulset raftkv --replicas N`, and wait until those pods are gone;
#   4. delete the PersistentVolumeClaims data-raftkv-<ordinal> of ordinals >= N, so that a
#      later scale-up starts those pods on empty volumes and they join as new members,
#      instead of starting on a removed member's log (which no longer counts them in).
# Why not the other way round: a pod scaled away first is still a voter, so until it is
# removed the cluster needs a majority of the old count (3 of 5) out of fewer pods, and
# one more failure stops it. Removing first keeps every step at full strength: 5 voters,
# then 4, then 3, each change committed before the next, and only then a pod goes away.
#
# Re-running after an interruption finishes the job: members already removed are
# skipped, and the claims of removed ordinals are deleted. N must be at least 3 (the
# initial members in RAFTKV_PEERS, which a joining pod asks).
#
# Settings: KUBE_CONTEXT (default: kubectl's current context), NAMESPACE (raftkv),
# SCALE_TIMEOUT_S (600: the wait for new voters, for pods to go away).
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=${NAMESPACE:-raftkv}
STATEFULSET=raftkv
CLIENT_POD=raftkv-client
MIN_REPLICAS=3
SCALE_TIMEOUT_S=${SCALE_TIMEOUT_S:-600}

usage() {
  echo "usage: k8s/scale.sh N    (N >= $MIN_REPLICAS replicas)" >&2
  exit 2
}
fail() {
  echo "scale: $*" >&2
  exit 1
}
say() { printf '==> %s\n' "$*"; }

[[ $# == 1 && $1 =~ ^[0-9]+$ ]] || usage
target=$((10#$1))
((target >= MIN_REPLICAS)) ||
  fail "$target is fewer than the $MIN_REPLICAS initial members: a scale-up pod joins through them"
command -v kubectl >/dev/null || fail "kubectl is not installed"
command -v python3 >/dev/null || fail "python3 is needed to read raftkv's JSON"

context=()
if [[ -n ${KUBE_CONTEXT:-} ]]; then
  context=(--context "$KUBE_CONTEXT")
fi
k() {
  kubectl "${context[@]}" --namespace "$NAMESPACE" "$@"
}

# raftkv in the client pod (its RAFTKV_ENDPOINTS name the replicas).
raftkv() {
  k exec "$CLIENT_POD" -- raftkv "$@"
}

# "id role client-address" per member of the leader's configuration, after a line
# "leader <id>".
members() {
  local listing
  listing=$(raftkv --output json --timeout-ms 10000 member list) || return 1
  python3 -c '
import json, sys
listing = json.load(sys.stdin)
print("leader", listing["leader"])
for member in listing["members"]:
    print(member["id"], member["role"], member["client_address"] or "-")
' <<<"$listing"
}

# Fills ROLE[id], CLIENT[id] and LEADER from the member list.
declare -A ROLE CLIENT
LEADER=
read_members() {
  local output id role client
  output=$(members) || return 1
  ROLE=() CLIENT=()
  while read -r id role client; do
    if [[ $id == leader ]]; then
      LEADER=$role
    else
      ROLE[$id]=$role CLIENT[$id]=$client
    fi
  done <<<"$output"
}

# Members 1..$1 all answer `raftkv status` at their client addresses and follow LEADER.
members_serve() {
  local id addresses=
  for ((id = 1; id <= $1; id++)); do
    addresses+=${addresses:+,}${CLIENT[$id]}
  done
  raftkv --endpoints "$addresses" --output json --timeout-ms 5000 status | python3 -c '
import json, sys
leader = int(sys.argv[1])
bad = []
for row in json.load(sys.stdin):
    if "status" not in row:
        bad.append("%s: %s" % (row["endpoint"], row.get("error", "no answer")))
    elif row["status"]["leader"] != leader:
        bad.append("%s: follows %s" % (row["endpoint"], row["status"]["leader"]))
if bad:
    sys.exit("not serving with leader %d: %s" % (leader, "; ".join(bad)))
' "$LEADER"
}

# The ordinals that have a volume claim data-raftkv-<ordinal>, one per line.
claimed_ordinals() {
  k get pvc --output name | sed -n "s|^persistentvolumeclaim/data-$STATEFULSET-\([0-9][0-9]*\)\$|\1|p" | sort -n
}

context_name=$(kubectl "${context[@]}" config current-context 2>/dev/null || true)
current=$(k get statefulset "$STATEFULSET" --output jsonpath='{.spec.replicas}') ||
  fail "no StatefulSet $STATEFULSET in namespace $NAMESPACE"
read_members || fail "cannot read the member list through $CLIENT_POD"
say "context ${KUBE_CONTEXT:-$context_name}, namespace $NAMESPACE: $STATEFULSET has $current replicas," \
  "members: $(for id in $(printf '%s\n' "${!ROLE[@]}" | sort -n); do printf '%s(%s) ' "$id" "${ROLE[$id]}"; done)"

if ((target > current)); then
  # A claim of a new ordinal whose id is not a member holds a removed member's log: the
  # pod would start on it and never be counted in. One of a member (a pod scaled away by
  # hand, without removal) is that member's own disk, and welcome back.
  for ordinal in $(claimed_ordinals); do
    if ((ordinal >= current && ordinal < target)) && [[ -z ${ROLE[$((ordinal + 1))]:-} ]]; then
      fail "the claim data-$STATEFULSET-$ordinal holds the state of node $((ordinal + 1)), which is no longer a member;" \
        "delete it first: kubectl -n $NAMESPACE delete pvc data-$STATEFULSET-$ordinal"
    fi
  done
  say "kubectl scale statefulset $STATEFULSET --replicas $target (the new pods join by themselves)"
  k scale statefulset "$STATEFULSET" --replicas "$target" >/dev/null
  say "waiting until members 1..$target are voters (at most $SCALE_TIMEOUT_S s)"
  started=$SECONDS deadline=$((SECONDS + SCALE_TIMEOUT_S))
  declare -A SHOWN
  while :; do
    if read_members; then
      missing=0
      for ((id = 1; id <= target; id++)); do
        role=${ROLE[$id]:-absent}
        if [[ ${SHOWN[$id]:-} != "$role" ]]; then
          SHOWN[$id]=$role
          ((id <= current)) || echo "    member $id: $role (after $((SECONDS - started)) s)"
        fi
        [[ $role == voter ]] || missing=1
      done
      ((missing)) || break
    fi
    ((SECONDS < deadline)) || fail "members 1..$target are not all voters after $SCALE_TIMEOUT_S s (kubectl -n $NAMESPACE get pods; logs of the new pods)"
    sleep 1
  done
else
  for ((id = 1; id <= target; id++)); do
    [[ ${ROLE[$id]:-} == voter ]] ||
      fail "member $id is ${ROLE[$id]:-not a member}, not a voter: wait until it has (re)joined before removing others"
  done
  members_serve "$target" || fail "members 1..$target must all be up before others are removed"
  removing=$(printf '%s\n' "${!ROLE[@]}" | sort -rn | awk -v n="$target" '$1 > n')
  changed=0
  [[ -z $removing && $target == "$current" ]] || changed=1
  for id in $removing; do
    say "raftkv member remove $id (pod $STATEFULSET-$((id - 1)))"
    raftkv --timeout-ms 60000 member remove "$id" >/dev/null || fail "member remove $id failed; run this script again"
    read_members || fail "cannot read the member list"
    [[ -z ${ROLE[$id]:-} ]] || fail "member $id is still listed after its removal"
    echo "    removed; members now: $(printf '%s\n' "${!ROLE[@]}" | sort -n | tr '\n' ' ')"
  done
  if ((target < current)); then
    say "kubectl scale statefulset $STATEFULSET --replicas $target"
    k scale statefulset "$STATEFULSET" --replicas "$target" >/dev/null
    for ((ordinal = target; ordinal < current; ordinal++)); do
      # (kubectl wait fails on a pod that is already gone: ask again before failing.)
      if ! k wait --for=delete "pod/$STATEFULSET-$ordinal" --timeout="${SCALE_TIMEOUT_S}s" >/dev/null 2>&1 &&
        k get pod "$STATEFULSET-$ordinal" >/dev/null 2>&1; then
        fail "pod $STATEFULSET-$ordinal is still there after $SCALE_TIMEOUT_S s"
      fi
    done
  fi
  for ordinal in $(claimed_ordinals); do
    if ((ordinal >= target)); then
      say "kubectl delete pvc data-$STATEFULSET-$ordinal (node $((ordinal + 1)) is no longer a member)"
      k delete pvc "data-$STATEFULSET-$ordinal" --wait=false >/dev/null
      changed=1
    fi
  done
  ((changed)) || say "nothing to do: $target replicas, members 1..$target"
fi

say "done: $target replicas"
raftkv member list
