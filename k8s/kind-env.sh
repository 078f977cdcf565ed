# Settings shared by k8s/cluster-up.sh, build-and-push.sh, deploy.sh and teardown.sh
# (sourced, not run). Each can be overridden from the environment.

# The kind cluster; kind names its kubectl context kind-<name> and its node containers
# <name>-control-plane, <name>-worker, <name>-worker2, ...
KIND_CLUSTER_NAME=${KIND_CLUSTER_NAME:-raftkv}
KUBE_CONTEXT=${KUBE_CONTEXT:-kind-${KIND_CLUSTER_NAME}}
# The local registry container of the kind "local registry" recipe: localhost:5001 on the
# host, kind-registry:5000 inside the kind Docker network.
REGISTRY_NAME=${REGISTRY_NAME:-kind-registry}
REGISTRY_PORT=${REGISTRY_PORT:-5001}
REGISTRY_IMAGE=${REGISTRY_IMAGE:-registry:2}
# The image k8s/build-image.sh builds, and where the kind overlays pull it from
# (k8s/overlays/kind*/kustomization.yaml name localhost:5001/raftkv:dev).
LOCAL_IMAGE=${LOCAL_IMAGE:-raftkv:dev}
REGISTRY_IMAGE_REF=${REGISTRY_IMAGE_REF:-localhost:${REGISTRY_PORT}/raftkv:dev}
NAMESPACE=raftkv

kind_kubectl() { kubectl --context "$KUBE_CONTEXT" "$@"; }

require() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$(basename "$0"): $tool is not installed" >&2; exit 1; }
    done
}
