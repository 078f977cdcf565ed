#!/usr/bin/env bash
# Creates a local Kubernetes cluster for raftkv: kind with one control plane and five
# workers (k8s/kind-config.yaml) and a local image registry at localhost:5001, following
# the kind "local registry" recipe (https://kind.sigs.k8s.io/docs/user/local-registry/).
# Idempotent: an existing registry or cluster is reused.
#
# Needs docker, kind and kubectl. Next: k8s/build-and-push.sh, then k8s/deploy.sh.
# Settings (KIND_CLUSTER_NAME, REGISTRY_PORT, ...): k8s/kind-env.sh. KIND_NODE_IMAGE
# picks the Kubernetes version (a kindest/node image), default: the kind release's own.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=k8s/kind-env.sh
source k8s/kind-env.sh
require docker kind kubectl

# Six kind nodes each run a kubelet and containerd: the host's default inotify limits
# are often too low ("too many open files", pods stuck). See kind's known issues.
instances=$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 512)
if (( instances < 512 )); then
    echo "warning: fs.inotify.max_user_instances is $instances; kind with 6 nodes wants 512+:"
    echo "  sudo sysctl fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288"
fi

echo "==> 1. registry container $REGISTRY_NAME on 127.0.0.1:$REGISTRY_PORT"
if [[ "$(docker inspect -f '{{.State.Running}}' "$REGISTRY_NAME" 2>/dev/null || true)" == true ]]; then
    echo "    already running"
elif docker inspect "$REGISTRY_NAME" >/dev/null 2>&1; then
    docker start "$REGISTRY_NAME" >/dev/null
    echo "    started the existing container"
else
    docker run -d --restart=always -p "127.0.0.1:${REGISTRY_PORT}:5000" --network bridge \
        --name "$REGISTRY_NAME" "$REGISTRY_IMAGE" >/dev/null
    echo "    created from $REGISTRY_IMAGE"
fi

echo "==> 2. kind cluster $KIND_CLUSTER_NAME (1 control plane, 5 workers)"
if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME"; then
    echo "    already exists"
else
    create=(kind create cluster --name "$KIND_CLUSTER_NAME" --config k8s/kind-config.yaml --wait 5m)
    if [[ -n "${KIND_NODE_IMAGE:-}" ]]; then create+=(--image "$KIND_NODE_IMAGE"); fi
    "${create[@]}"
fi

echo "==> 3. every node pulls localhost:$REGISTRY_PORT from $REGISTRY_NAME:5000"
# Inside a node container, localhost is the node itself: containerd must be told where
# the registry really is (plain HTTP, through the kind network).
registry_dir="/etc/containerd/certs.d/localhost:${REGISTRY_PORT}"
for node in $(kind get nodes --name "$KIND_CLUSTER_NAME"); do
    docker exec "$node" mkdir -p "$registry_dir"
    printf '[host."http://%s:5000"]\n' "$REGISTRY_NAME" |
        docker exec -i "$node" cp /dev/stdin "$registry_dir/hosts.toml"
    echo "    $node"
done

echo "==> 4. registry joins the kind network"
if [[ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$REGISTRY_NAME")" == null ]]; then
    docker network connect kind "$REGISTRY_NAME"
    echo "    connected"
else
    echo "    already connected"
fi

echo "==> 5. the local-registry-hosting ConfigMap (KEP-1755) documents the registry"
kind_kubectl apply -f - <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:${REGISTRY_PORT}"
    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"
YAML

echo "==> 6. all nodes ready"
kind_kubectl wait --for=condition=Ready nodes --all --timeout=5m
workers=$(kind_kubectl get nodes --selector '!node-role.kubernetes.io/control-plane' -o name | wc -l)
if (( workers < 5 )); then
    echo "cluster-up: expected 5 workers, found $workers (delete the cluster: k8s/teardown.sh)" >&2
    exit 1
fi
kind_kubectl get nodes -o wide
echo
echo "cluster $KIND_CLUSTER_NAME is up (kubectl context $KUBE_CONTEXT)."
echo "next: k8s/build-and-push.sh && k8s/deploy.sh"
