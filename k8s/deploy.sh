#!/usr/bin/env bash
# Deploys raftkv on the kind cluster of k8s/cluster-up.sh and proves it serves:
#   0. the TLS Secrets, if the namespace does not have them yet: `raftkv certs init
#      --nodes 5` (run from the image $LOCAL_IMAGE) into $TLS_DIR (default k8s/tls,
#      gitignored; kept, with the CA key, to issue more certificates later), then
#      raftkv-tls (ca.crt, node-<id>.crt/.key: the StatefulSet's) and raftkv-client-tls
#      (ca.crt, client.crt/.key: the client pod's and the smoke Job's). An existing
#      $TLS_DIR/ca.crt is used as it is (certificates made elsewhere, e.g. with openssl);
#   1. kubectl apply -k k8s/overlays/kind (namespace, Services, StatefulSet, PDB, client);
#      on a re-deploy, recreates the client pod and restarts the replicas one at a time
#      so that they run the image last pushed under the same tag (skip: RESTART=0);
#   2. waits for the rollout: 3 replicas ready (each knows the leader and is caught up);
#   3. runs the smoke-test Job (k8s/overlays/kind-smoke), replacing any previous run,
#      prints its logs and exits non-zero if it failed.
# Needs kubectl; the image must be pushed first (k8s/build-and-push.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=k8s/kind-env.sh
source k8s/kind-env.sh
require kubectl
ns=(--namespace "$NAMESPACE")
timeout=${ROLLOUT_TIMEOUT:-10m}

kind_kubectl cluster-info >/dev/null ||
    { echo "deploy: no cluster behind kubectl context $KUBE_CONTEXT (k8s/cluster-up.sh)" >&2; exit 1; }

# --- TLS Secrets ------------------------------------------------------------------------
tls_dir=${TLS_DIR:-k8s/tls}
# Enough node certificates for the validation's scale-up to 5; scaling further needs
# `raftkv certs init` with more --nodes (same CA: see k8s/README.md) and a Secret update.
tls_nodes=${TLS_NODES:-5}
kind_kubectl apply -f k8s/base/namespace.yaml >/dev/null
if kind_kubectl "${ns[@]}" get secret raftkv-tls raftkv-client-tls >/dev/null 2>&1; then
    echo "==> TLS: Secrets raftkv-tls and raftkv-client-tls exist; kept as they are"
else
    if [[ ! -f $tls_dir/ca.crt ]]; then
        echo "==> TLS: raftkv certs init --nodes $tls_nodes into $tls_dir (from the image $LOCAL_IMAGE)"
        require docker
        mkdir -p "$tls_dir"
        chmod 0700 "$tls_dir"
        docker run --rm --user "$(id -u):$(id -g)" --network none \
            --volume "$(cd "$tls_dir" && pwd):/certs" --entrypoint raftkv "$LOCAL_IMAGE" \
            certs init --dir /certs --nodes "$tls_nodes" --namespace "$NAMESPACE"
    fi
    node_files=(--from-file="$tls_dir/ca.crt")
    for id in $(seq 1 "$tls_nodes"); do
        node_files+=(--from-file="$tls_dir/node-$id.crt" --from-file="$tls_dir/node-$id.key")
    done
    echo "==> TLS: Secrets raftkv-tls (nodes 1..$tls_nodes) and raftkv-client-tls from $tls_dir"
    # create --dry-run | apply: idempotent, and a way to update them (rotation) too.
    kind_kubectl "${ns[@]}" create secret generic raftkv-tls "${node_files[@]}" \
        --dry-run=client --output yaml | kind_kubectl apply -f -
    kind_kubectl "${ns[@]}" create secret generic raftkv-client-tls --from-file="$tls_dir/ca.crt" \
        --from-file="$tls_dir/client.crt" --from-file="$tls_dir/client.key" \
        --dry-run=client --output yaml | kind_kubectl apply -f -
fi

generation=""
if kind_kubectl "${ns[@]}" get statefulset raftkv >/dev/null 2>&1; then
    generation=$(kind_kubectl "${ns[@]}" get statefulset raftkv -o jsonpath='{.metadata.generation}')
fi
redeploy=false
if [[ -n $generation && ${RESTART:-1} != 0 ]]; then redeploy=true; fi

if [[ $redeploy == true ]]; then
    # A Pod's spec is immutable: recreate the client rather than patch it (this also
    # makes it pull the image pushed last).
    echo "==> re-deploy: recreate the client pod"
    kind_kubectl "${ns[@]}" delete pod raftkv-client --ignore-not-found --wait=true
fi

echo "==> kubectl apply -k k8s/overlays/kind (context $KUBE_CONTEXT)"
kind_kubectl apply -k k8s/overlays/kind

if [[ $redeploy == true ]]; then
    # A changed pod template already rolls the replicas; an unchanged one still points at
    # the re-pushed `dev` tag, so restart them (one at a time, each ready before the next).
    if [[ "$(kind_kubectl "${ns[@]}" get statefulset raftkv -o jsonpath='{.metadata.generation}')" == "$generation" ]]; then
        echo "==> re-deploy: restart the replicas one at a time to run the image pushed last"
        kind_kubectl "${ns[@]}" rollout restart statefulset/raftkv
    fi
fi

echo "==> waiting for the StatefulSet rollout (timeout $timeout)"
kind_kubectl "${ns[@]}" rollout status statefulset/raftkv --timeout="$timeout"
kind_kubectl "${ns[@]}" wait --for=condition=Ready pod/raftkv-client --timeout="$timeout"
kind_kubectl "${ns[@]}" get pods -o wide

echo "==> smoke test: Job raftkv-smoke"
# Foreground: the old run's pods are gone before the new run starts, so the logs below
# are this run's only.
kind_kubectl "${ns[@]}" delete job raftkv-smoke --ignore-not-found --cascade=foreground --wait=true
kind_kubectl apply -k k8s/overlays/kind-smoke
# `kubectl wait` takes one condition; a failed Job never becomes Complete, so poll for
# either terminal condition. The Job's own deadline is 300 s.
outcome=""
for _ in $(seq 1 200); do
    conditions=$(kind_kubectl "${ns[@]}" get job raftkv-smoke \
        -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')
    case " $conditions " in
        *" Complete "*) outcome=succeeded; break ;;
        *" Failed "*) outcome=failed; break ;;
    esac
    sleep 2
done
echo "==> kubectl logs of the Job's pods"
# --tail=-1: with a selector, kubectl logs shows only the last 10 lines by default.
kind_kubectl "${ns[@]}" logs --selector job-name=raftkv-smoke --prefix --tail=-1 || true
case $outcome in
    succeeded) echo "smoke test passed: raftkv serves on $KUBE_CONTEXT" ;;
    failed)
        kind_kubectl "${ns[@]}" describe job raftkv-smoke | tail -n 20
        echo "deploy: the smoke test FAILED (logs above)" >&2
        exit 1 ;;
    *)
        echo "deploy: the smoke test did not finish within 400 s" >&2
        exit 1 ;;
esac
echo
echo "try: kubectl --context $KUBE_CONTEXT -n $NAMESPACE exec raftkv-client -- raftkv status"
