# shellcheck shell=bash
# The kubectl driver of k8s/validate.sh: the real thing, on the kind cluster that
# k8s/cluster-up.sh creates and k8s/deploy.sh deploys to (StatefulSet raftkv in namespace
# raftkv, client pod raftkv-client running `raftkv idle`).
#
#   pod raftkv-N        a pod of the StatefulSet; deleting it is `kubectl delete pod`
#                       (SIGTERM: a leader hands leadership over before it exits) and the
#                       StatefulSet recreates it with the same name and volume
#   worker of raftkv-N  the pod's node; a kind node is a Docker container of the same
#                       name (raftkv-worker, raftkv-worker2, ...), stopped and started
#                       with `docker stop` / `docker start`
#   partition           not available: kind's default CNI does not enforce NetworkPolicy
#   scale up            `kubectl scale statefulset raftkv --replicas N`: the new pods join
#                       by themselves (5 replicas need 5 workers: required anti-affinity)
#   scale down          k8s/scale.sh N (member remove, then scale, then delete the claims)
#   wipe a replica      delete its PersistentVolumeClaim and its pod: the StatefulSet
#                       recreates the pod with a new, empty claim
#
# Settings: KUBE_CONTEXT (default kind-raftkv), NAMESPACE (raftkv).

: "${KIND_CLUSTER_NAME:=raftkv}"
: "${KUBE_CONTEXT:=kind-$KIND_CLUSTER_NAME}"
: "${STATEFULSET:=raftkv}"
# A worker stopped and started again must boot its kubelet and restart its pods.
: "${LEADER_TIMEOUT_S:=120}"
: "${CONVERGE_TIMEOUT_S:=300}"
: "${RECREATE_TIMEOUT_S:=180}"
# New pods scheduled, started and made voters; k8s/scale.sh's waits.
: "${SCALE_TIMEOUT_S:=300}"
# Through a stopped worker, a write may first wait out connection timeouts to the
# replica's address, which still resolves.
: "${WRITE_TIMEOUT_MS:=60000}"

k() {
  kubectl --context "$KUBE_CONTEXT" --namespace "$NAMESPACE" "$@"
}

# The pod's UID while deleted, to tell its replacement apart.
DELETED_POD_UID=

driver_check() {
  command -v kubectl >/dev/null || fail "kubectl is not installed"
  command -v docker >/dev/null || fail "docker is not installed (kind nodes are stopped with it)"
  k get statefulset "$STATEFULSET" >/dev/null ||
    fail "no StatefulSet $STATEFULSET in namespace $NAMESPACE (context $KUBE_CONTEXT): run k8s/cluster-up.sh and k8s/deploy.sh first"
}

# The deployment is k8s/deploy.sh's: here only wait until it is complete.
driver_up() {
  k rollout status "statefulset/$STATEFULSET" --timeout=300s >/dev/null ||
    fail "the StatefulSet $STATEFULSET did not become ready"
  k wait --for=condition=Ready "pod/$CLIENT_POD" --timeout=120s >/dev/null ||
    fail "the client pod $CLIENT_POD is not ready"
  info "context $KUBE_CONTEXT, namespace $NAMESPACE: StatefulSet $STATEFULSET rolled out, $CLIENT_POD ready"
}

driver_down() {
  :
}

driver_logs() {
  k get pods --output wide || true
  local pod
  for pod in $(k get pods --selector app.kubernetes.io/name=raftkv --output name 2>/dev/null | sed 's|^pod/||' | sort -t- -k2 -n); do
    echo "--- last log lines of $pod"
    k logs --tail 30 "$pod" 2>&1 || true
  done
}

# raftkv in the client pod.
cli() {
  k exec "$CLIENT_POD" -- raftkv "$@"
}

replicas_on_distinct_workers() {
  local pod state phase node seen=" "
  for pod in "${PODS[@]}"; do
    # jsonpath output ends without a newline, so no `read` here.
    state=$(k get pod "$pod" --output jsonpath='{.status.phase} {.spec.nodeName}') || fail "no pod $pod"
    phase=${state%% *} node=${state#* }
    [[ $phase == Running ]] || fail "$pod is $phase, not Running"
    [[ $seen != *" $node "* ]] || fail "$pod shares worker $node with another replica"
    seen+="$node "
    ok "$pod Running on worker $node"
  done
}

worker_of() {
  k get pod "$1" --output jsonpath='{.spec.nodeName}'
}

client_worker() {
  worker_of "$CLIENT_POD"
}

# Returns at once: the pod terminates (gracefully) while the scenario writes.
delete_pod() {
  DELETED_POD_UID=$(k get pod "$1" --output jsonpath='{.metadata.uid}')
  k delete pod "$1" --wait=false >/dev/null
}

# Until the StatefulSet's replacement (another UID) has its container running.
wait_recreated() {
  local pod=$1 deadline=$((SECONDS + RECREATE_TIMEOUT_S)) state
  while ((SECONDS < deadline)); do
    state=$(k get pod "$pod" --output jsonpath='{.metadata.uid} {.status.phase}' 2>/dev/null || true)
    if [[ -n $state && ${state%% *} != "$DELETED_POD_UID" && ${state#* } == Running ]]; then
      return 0
    fi
    sleep 1
  done
  fail "the StatefulSet did not recreate $pod within $RECREATE_TIMEOUT_S s (last: ${state:-none})"
}

stop_worker() {
  docker stop "$1" >/dev/null
}

start_worker() {
  docker start "$1" >/dev/null
}

supports_partition() {
  return 1
}

partition() {
  fail "the kubectl driver cannot partition a pod"
}

heal() {
  fail "the kubectl driver cannot partition a pod"
}

scale_up() {
  k scale statefulset "$STATEFULSET" --replicas "$1" >/dev/null
}

# The operator's procedure, as it is.
scale_down() {
  KUBE_CONTEXT=$KUBE_CONTEXT NAMESPACE=$NAMESPACE SCALE_TIMEOUT_S=$SCALE_TIMEOUT_S \
    k8s/scale.sh "$1" 2>&1 | sed 's/^/      /'
}

# Checks that scale_down removed the pod and its claim.
scaled_away() {
  ! k get pod "$1" >/dev/null 2>&1 || fail "pod $1 is still there"
  # A claim deleted while still Terminating is gone as far as the StatefulSet goes.
  local deleting
  deleting=$(k get pvc "data-$1" --output jsonpath='{.metadata.deletionTimestamp}' 2>/dev/null) || return 0
  [[ -n $deleting ]] || fail "the claim data-$1 is still there"
}

# A lost volume: delete the pod's claim, then the pod; the StatefulSet recreates the pod
# and, the claim being gone, a new empty one. The claim is protected while a pod uses it,
# so it goes once the pod has; if the StatefulSet was quicker and its new pod took the
# old claim, delete that pod again. Returns once the new pod runs.
wipe_replica() {
  local pod=$1 claim=data-$1 old_claim attempt deadline
  old_claim=$(k get pvc "$claim" --output jsonpath='{.metadata.uid}') || fail "no claim $claim"
  k delete pvc "$claim" --wait=false >/dev/null
  for attempt in 1 2 3; do
    DELETED_POD_UID=$(k get pod "$pod" --output jsonpath='{.metadata.uid}' 2>/dev/null || true)
    k delete pod "$pod" --ignore-not-found --wait=true >/dev/null
    deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
      if [[ $(k get pvc "$claim" --output jsonpath='{.metadata.uid}' 2>/dev/null || true) != "$old_claim" ]]; then
        wait_recreated "$pod"
        return 0
      fi
      sleep 1
    done
    info "the claim $claim is still held (attempt $attempt): deleting $pod again"
  done
  fail "the claim $claim of $pod was not deleted"
}
