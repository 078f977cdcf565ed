#!/usr/bin/env bash
# CI part 2 of the Kubernetes deployment (issue 5): the validation scenario against the
# real image, with Docker containers standing in for pods and workers (this machine has
# Docker but no Kubernetes). Builds the image from the working tree (k8s/build-image.sh:
# static binaries on `scratch`, no registry or base image needed), then runs
# k8s/validate.sh --driver docker, which removes leftovers of an earlier run first and
# its own containers, network and volumes at the end (KEEP=1 keeps them).
# Usage: ci/k8s-docker.sh   (IMAGE=<tag> to build and test another tag; default raftkv:dev)
set -euo pipefail
cd "$(dirname "$0")/.."

image=${IMAGE:-raftkv:dev}
printf '\n== image %s (k8s/build-image.sh)\n' "$image"
k8s/build-image.sh "$image"

printf '\n== validation scenario, docker driver (k8s/validate.sh --driver docker)\n'
IMAGE=$image k8s/validate.sh --driver docker

docker image ls "$image" --format 'image {{.Repository}}:{{.Tag}}: {{.Size}}'
