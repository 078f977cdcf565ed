#!/usr/bin/env bash
# CI check of the Kubernetes manifests (issue 5), offline once its Python tools are
# installed:
#   1. `kubectl kustomize` of every kustomization under k8s/ (base, smoke, every overlay);
#   2. each rendering validated against the Kubernetes JSON schemas of the versions in
#      K8S_VERSIONS with `kubernetes-validate --strict` (unknown fields are errors);
#   3. k8s/check_manifests.py: the properties the design relies on (required
#      anti-affinity, probes, PDB, publishNotReadyAddresses, volume claims, security
#      context, ...), so that they cannot silently disappear;
#   4. self-tests proving steps 2 and 3 bite: mutated manifests must fail;
#   5. `bash -n` (and shellcheck when installed) of the kind scripts CI cannot run.
# The tools (pinned in ci/k8s-manifests.requirements.txt) go into a venv under target/,
# reused while the pins are unchanged. Knobs: K8S_VERSIONS, RAFTKV_K8S_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest release we support (Pod Security Admission, PVC retention and PDB
# unhealthyPodEvictionPolicy on by default), the one kubectl/kustomize here and kind
# v0.26-0.27 ship, and a recent one.
K8S_VERSIONS="${K8S_VERSIONS:-1.30.0 1.32.0 1.35.0}"
venv="${RAFTKV_K8S_VENV:-target/k8s-venv}"
requirements=ci/k8s-manifests.requirements.txt
out=target/k8s-manifests
started=$(date +%s)

step() { printf '\n-- %s\n' "$*"; }
fail() { echo "k8s-manifests: FAILED: $*" >&2; exit 1; }

command -v kubectl >/dev/null || fail "kubectl (with its built-in kustomize) is not installed"

step "python tools (${requirements})"
stamp="$(sha256sum "$requirements" | cut -d' ' -f1) $(python3 --version 2>&1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --only-binary=:all: --requirement "$requirements"
    echo "$stamp" >"$venv/.stamp"
    echo "installed into $venv"
else
    echo "reusing $venv"
fi
python="$venv/bin/python"
validate=("$venv/bin/kubernetes-validate" --strict --quiet)
for version in $K8S_VERSIONS; do validate+=(-k "$version"); done
# Prove the schemas need no network: run the validator in a network namespace of its own
# when user namespaces allow it (they do on this machine; elsewhere it just runs).
offline=()
if unshare --user --map-root-user --net true 2>/dev/null; then
    offline=(unshare --user --map-root-user --net)
fi

step "kubectl kustomize ($(kubectl version --client 2>/dev/null | tr '\n' ' '))"
rm -rf "$out"
mkdir -p "$out"
renderings=()
while IFS= read -r kustomization; do
    dir=$(dirname "$kustomization")
    name=${dir#k8s/}
    file="$out/${name//\//_}.yaml"
    kubectl kustomize "$dir" >"$file" || fail "kubectl kustomize $dir"
    echo "$dir -> $file ($(grep -c '^kind: ' "$file") objects)"
    renderings+=("$file")
done < <(find k8s -name kustomization.yaml -not -path '*/target/*' | sort)
[[ ${#renderings[@]} -ge 4 ]] || fail "expected at least base, smoke, overlays/kind and overlays/kind-smoke"

step "schemas: kubernetes-validate --strict, Kubernetes ${K8S_VERSIONS}${offline:+ (without network)}"
"${offline[@]}" "${validate[@]}" "${renderings[@]}" || fail "schema validation"
echo "all renderings valid against ${K8S_VERSIONS}"

step "properties: k8s/check_manifests.py"
for file in "${renderings[@]}"; do
    name=$(basename "$file" .yaml)
    if grep -q '^kind: StatefulSet$' "$file"; then set=deployment; else set=smoke; fi
    # Overlays for kind pull from the local registry on every start; the base and the
    # smoke kustomization use the image k8s/build-image.sh tags locally.
    case "$name" in
        overlays_kind*) expectations=(--image localhost:5001/raftkv:dev --pull-policy Always) ;;
        base | smoke) expectations=(--image raftkv:dev --pull-policy IfNotPresent) ;;
        *) expectations=() ;;
    esac
    echo "== $name (${set})"
    "$python" k8s/check_manifests.py --set "$set" "${expectations[@]}" "$file" ||
        fail "property checks of $name"
done

step "self-test: each weakened property is caught by its check"
"$python" k8s/check_manifests.py --self-test "$out/overlays_kind.yaml" "$out/overlays_kind-smoke.yaml" ||
    fail "check_manifests.py --self-test"

step "self-test: the command line fails on a mutated rendering (anti-affinity only preferred)"
mutated="$out/mutated.yaml.txt"
sed 's/requiredDuringSchedulingIgnoredDuringExecution/preferredDuringSchedulingIgnoredDuringExecution/' \
    "$out/overlays_kind.yaml" >"$mutated"
! cmp -s "$mutated" "$out/overlays_kind.yaml" || fail "the mutation changed nothing"
if "$python" k8s/check_manifests.py --set deployment "$mutated" >"$out/mutated.log"; then
    cat "$out/mutated.log"
    fail "check_manifests.py accepted a StatefulSet without required anti-affinity"
fi
grep '^FAIL' "$out/mutated.log"

step "self-test: --strict rejects an unknown field (podManagmentPolicy)"
sed 's/podManagementPolicy:/podManagmentPolicy:/' "$out/overlays_kind.yaml" >"$mutated"
if "${offline[@]}" "${validate[@]}" "$mutated" >"$out/mutated.log" 2>&1; then
    cat "$out/mutated.log"
    fail "kubernetes-validate --strict accepted an unknown field"
fi
grep -m1 'podManagmentPolicy' "$out/mutated.log" || fail "kubernetes-validate failed for another reason"
rm -f "$mutated" "$out/mutated.log"

step "kind scripts: bash -n$(command -v shellcheck >/dev/null && echo ' and shellcheck')"
for script in k8s/*.sh k8s/lib/*.sh ci/k8s-manifests.sh; do
    [[ -e "$script" ]] || continue
    bash -n "$script" || fail "bash -n $script"
    if command -v shellcheck >/dev/null; then shellcheck "$script" || fail "shellcheck $script"; fi
    echo "ok $script"
done

echo
echo "k8s manifests: all checks passed in $(( $(date +%s) - started ))s"
