#!/usr/bin/env bash
# A stand-in for kubectl, so that the Docker driver of k8s/validate.sh runs k8s/scale.sh
# itself (installed as `kubectl` first on its PATH). It knows only the calls scale.sh
# makes, and does them with docker on the driver's containers (see driver-docker.sh):
#
#   config current-context                          -> "docker"
#   get statefulset raftkv --output jsonpath=...    -> the number of raftkv-<n> containers
#   scale statefulset raftkv --replicas N           -> down only: stops and removes the
#                                                      containers of ordinals >= N
#   get pod NAME / wait --for=delete pod/NAME       -> whether container NAME exists
#   get pvc --output name                           -> volumes raftkv-data-<n>, named
#                                                      persistentvolumeclaim/data-raftkv-<n>
#   delete pvc data-raftkv-<n>                      -> removes volume raftkv-data-<n>
#   exec raftkv-client -- CMD...                    -> docker exec raftkv-client CMD...
#
# Anything else fails loudly. Environment: DOCKER_LABEL (the driver's resource label).
set -euo pipefail

: "${DOCKER_LABEL:?set by the docker driver}"

unsupported() {
  echo "kubectl-docker: unsupported: kubectl $*" >&2
  exit 3
}

# Global options scale.sh passes; the namespace is implied.
args=()
while (($# > 0)); do
  case $1 in
    --context | --namespace | -n) shift 2 ;;
    --context=* | --namespace=*) shift ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- "${args[@]}"

replicas() {
  docker ps --all --filter "label=$DOCKER_LABEL" --format '{{.Names}}' | grep -E '^raftkv-[0-9]+$' || true
}

exists() {
  docker container inspect "$1" >/dev/null 2>&1
}

case "${1:-} ${2:-}" in
  "config current-context")
    echo docker
    ;;
  "get statefulset")
    [[ ${3:-} == raftkv ]] || unsupported "$@"
    printf '%s' "$(replicas | grep -c . || true)"
    ;;
  "scale statefulset")
    [[ ${3:-} == raftkv && ${4:-} == --replicas && ${5:-} =~ ^[0-9]+$ ]] || unsupported "$@"
    target=$5
    current=$(replicas | grep -c . || true)
    if ((target > current)); then
      unsupported "$@" "(the stand-in only scales down)"
    fi
    # The StatefulSet removes the pods of the highest ordinals (SIGTERM, grace period).
    for pod in $(replicas); do
      if ((${pod#raftkv-} >= target)); then
        docker stop "$pod" >/dev/null
        docker rm "$pod" >/dev/null
      fi
    done
    ;;
  "get pod")
    exists "${3:?pod name}"
    ;;
  "wait --for=delete")
    [[ ${3:-} == pod/* ]] || unsupported "$@"
    ! exists "${3#pod/}"
    ;;
  "get pvc")
    [[ ${3:-} == --output && ${4:-} == name ]] || unsupported "$@"
    docker volume ls --quiet --filter "label=$DOCKER_LABEL" |
      sed -n 's|^raftkv-data-\([0-9][0-9]*\)$|persistentvolumeclaim/data-raftkv-\1|p'
    ;;
  "delete pvc")
    [[ ${3:-} =~ ^data-raftkv-[0-9]+$ ]] || unsupported "$@"
    docker volume rm "raftkv-data-${3#data-raftkv-}" >/dev/null
    ;;
  "exec "*)
    pod=$2
    shift 2
    [[ ${1:-} == -- ]] || unsupported exec "$pod" "$@"
    shift
    exec docker exec "$pod" "$@"
    ;;
  *)
    unsupported "$@"
    ;;
esac
