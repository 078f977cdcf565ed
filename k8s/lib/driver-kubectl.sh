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
#
# Settings: KUBE_CONTEXT (default kind-raftkv), NAMESPACE (raftkv).

: "${KIND_CLUSTER_NAME:=raftkv}"
: "${KUBE_CONTEXT:=kind-$KIND_CLUSTER_NAME}"
: "${STATEFULSET:=raftkv}"
# A worker stopped and started again must boot its kubelet and restart its pods.
: "${LEADER_TIMEOUT_S:=120}"
: "${CONVERGE_TIMEOUT_S:=300}"
: "${RECREATE_TIMEOUT_S:=180}"
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
  for pod in "${PODS[@]}"; do
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
