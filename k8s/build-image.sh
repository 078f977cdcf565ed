#!/usr/bin/env bash
# Builds the raftkv image (k8s/Dockerfile) from the working tree, with no registry and
# no base image: the binaries are compiled statically on the host and copied onto
# `scratch`.
#
# Usage: k8s/build-image.sh [tag]        (default raftkv:dev)
#
# 1. `cargo build --release` of raftkv-node and raftkv with glibc linked statically
#    (+crt-static), into target/static so the ordinary release build stays valid;
# 2. checks that both really are static (no loader, no shared library);
# 3. stages them, stripped, with an empty data directory, under k8s/dist/ (gitignored);
# 4. `docker build -f k8s/Dockerfile -t <tag> .` from the repository root (.dockerignore
#    keeps everything but k8s/dist and the Dockerfile out of the context).
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${1:-raftkv:dev}
host=$(rustc -vV | sed -n 's/^host: //p')
case $host in
  *-linux-gnu) ;;
  *) echo "build-image: the host toolchain is $host; a static glibc build needs a *-linux-gnu host" >&2
     exit 1 ;;
esac
command -v docker >/dev/null || { echo "build-image: docker is not installed" >&2; exit 1; }

echo "==> static release build of raftkv-node and raftkv ($host, target/static)"
# With an explicit --target, RUSTFLAGS reach only the target's crates, not build scripts
# or proc macros (which must stay dynamic).
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
  --target "$host" --target-dir target/static -p raftkv-node -p raftkv-cli --bins
built=target/static/$host/release

staging=k8s/dist
rm -rf "$staging"
mkdir -p "$staging/data"
for binary in raftkv-node raftkv; do
  cp "$built/$binary" "$staging/$binary"
  strip "$staging/$binary"
  description=$(file -b "$staging/$binary")
  # `file` says "statically linked" or "static-pie linked"; a dynamic binary names its
  # interpreter (the loader), which a scratch image does not have.
  if [[ $description != *static* || $description == *interpreter* ]]; then
    echo "build-image: $binary is not static: $description" >&2
    exit 1
  fi
  if ldd "$staging/$binary" 2>&1 | grep -q '=>'; then
    echo "build-image: $binary needs shared libraries:" >&2
    ldd "$staging/$binary" >&2
    exit 1
  fi
  echo "    $binary: $(du -h "$staging/$binary" | cut -f1), ${description%%,*}, static"
done

echo "==> docker build -t $tag"
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
docker build -f k8s/Dockerfile -t "$tag" --build-arg "REVISION=$revision" .
docker image ls "$tag"
