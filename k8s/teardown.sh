#!/usr/bin/env bash
# Deletes the kind cluster of k8s/cluster-up.sh (its volumes go with it) and the local
# registry container, unless another kind cluster still uses the registry or
# KEEP_REGISTRY=1 (which keeps the pushed images for the next k8s/cluster-up.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=k8s/kind-env.sh
source k8s/kind-env.sh
require docker kind

if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME"; then
    echo "==> kind delete cluster --name $KIND_CLUSTER_NAME"
    kind delete cluster --name "$KIND_CLUSTER_NAME"
else
    echo "no kind cluster $KIND_CLUSTER_NAME"
fi

others=$(kind get clusters 2>/dev/null | grep -vx "$KIND_CLUSTER_NAME" || true)
if ! docker inspect "$REGISTRY_NAME" >/dev/null 2>&1; then
    echo "no registry container $REGISTRY_NAME"
elif [[ ${KEEP_REGISTRY:-0} == 1 ]]; then
    echo "keeping the registry $REGISTRY_NAME (KEEP_REGISTRY=1)"
elif [[ -n $others ]]; then
    echo "keeping the registry $REGISTRY_NAME: other kind clusters may use it ($(echo "$others" | tr '\n' ' '))"
else
    echo "==> docker rm -f $REGISTRY_NAME"
    docker rm -f "$REGISTRY_NAME" >/dev/null
fi
