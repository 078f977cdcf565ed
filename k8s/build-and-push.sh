#!/usr/bin/env bash
# Builds the raftkv image (k8s/build-image.sh, tag raftkv:dev) and pushes it to the local
# registry of k8s/cluster-up.sh as localhost:5001/raftkv:dev, where the kind overlays
# pull it from.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=k8s/kind-env.sh
source k8s/kind-env.sh
require docker

if [[ "$(docker inspect -f '{{.State.Running}}' "$REGISTRY_NAME" 2>/dev/null || true)" != true ]]; then
    echo "build-and-push: the registry container $REGISTRY_NAME is not running (k8s/cluster-up.sh)" >&2
    exit 1
fi

k8s/build-image.sh "$LOCAL_IMAGE"

echo "==> docker push $REGISTRY_IMAGE_REF"
docker tag "$LOCAL_IMAGE" "$REGISTRY_IMAGE_REF"
docker push "$REGISTRY_IMAGE_REF"
echo "pushed $(docker image inspect -f '{{index .RepoDigests 0}}' "$REGISTRY_IMAGE_REF" 2>/dev/null || echo "$REGISTRY_IMAGE_REF")"
echo "next: k8s/deploy.sh (pods pull the new image when they start; deploy.sh restarts them)"
