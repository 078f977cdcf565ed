# shellcheck shell=bash
# The Docker driver of k8s/validate.sh: plain containers stand in for the StatefulSet's
# pods and for the workers they run on, so CI can run the validation scenario on a
# machine without Kubernetes.
#
#   pod raftkv-N        container raftkv-N on the user-defined network raftkv-net, with
#                       the network aliases raftkv-N.raftkv-peer and
#                       raftkv-N.raftkv-peer.raftkv.svc.cluster.local (the DNS names the
#                       headless Service gives the pod) and the named volume raftkv-data-N
#                       (its PersistentVolumeClaim); the RAFTKV_* settings of the pod
#   worker of raftkv-N  the container itself: "stopping the worker" is `docker stop`
#   StatefulSet         this file: a deleted pod (`docker rm -f`) is recreated with the
#                       same name, alias and volume by wait_recreated
#   client pod          container raftkv-client running `raftkv idle`, for `docker exec`
#   Secrets raftkv-tls, raftkv-client-tls
#                       `raftkv certs init --nodes 5` (run from the image) into $WORK/tls;
#                       the node files bind-mounted read-only where the StatefulSet mounts
#                       its Secret (/etc/raftkv/tls, RAFTKV_TLS_DIR), the client's where the
#                       client pod mounts its own (RAFTKV_TLS_CERT/KEY/CA): mutual TLS, as
#                       on Kubernetes. The containers answer to the DNS names the
#                       certificates carry (the aliases above).
#   partition           `docker network disconnect` / `connect` (re-adding the alias)
#   scale up            what the StatefulSet does for `kubectl scale`: containers
#                       raftkv-3, raftkv-4, ... on new volumes, with the same settings
#   scale down          k8s/scale.sh itself, with k8s/lib/kubectl-docker.sh as its kubectl
#                       (member remove through the client container, then the containers
#                       go, then their volumes)
#   wipe a replica      `docker stop`, remove the container and its volume, start it again
#                       on a new, empty volume of the same name
#
# Every resource carries the label io.raftkv.validate=docker: driver_up removes leftovers
# of an earlier run by that label before it starts, driver_down removes this run's.

DOCKER_LABEL=io.raftkv.validate=docker
DOCKER_NETWORK=${DOCKER_NETWORK:-raftkv-net}
: "${IMAGE:=raftkv:dev}"
: "${LEADER_TIMEOUT_S:=30}"
: "${CONVERGE_TIMEOUT_S:=60}"
: "${RECREATE_TIMEOUT_S:=30}"
# Scale-up members becoming voters, a wiped replica rejoining, k8s/scale.sh's waits.
: "${SCALE_TIMEOUT_S:=60}"
: "${WRITE_TIMEOUT_MS:=30000}"

# Where the Secrets are mounted (k8s/base/statefulset.yaml, client-pod.yaml).
TLS_MOUNT=/etc/raftkv/tls

# The two Secrets deploy.sh makes, as directories: $WORK/tls/node (ca.crt, node-<id>.crt/.key
# for ids 1..SCALED_REPLICAS) and $WORK/tls/client (ca.crt, client.crt/.key). `raftkv
# certs init` runs from the image, as this user, so the files are ours. The containers run
# as 65532, which must read the keys: they are made world-readable, inside $WORK, which
# only this user can enter (mktemp -d), and the keys are thrown away with it.
docker_make_certificates() {
  local dir="$WORK/tls"
  mkdir -p "$dir/all" "$dir/node" "$dir/client"
  docker run --rm --quiet --user "$(id -u):$(id -g)" --network none --read-only \
    --label "$DOCKER_LABEL" --volume "$dir/all:/certs" --entrypoint raftkv "$IMAGE" \
    certs init --dir /certs --nodes "$SCALED_REPLICAS" --namespace "$NAMESPACE" >/dev/null
  cp "$dir/all/ca.crt" "$dir/all"/node-*.crt "$dir/all"/node-*.key "$dir/node/"
  cp "$dir/all/ca.crt" "$dir/all/client.crt" "$dir/all/client.key" "$dir/client/"
  chmod 0755 "$dir/node" "$dir/client"
  chmod 0644 "$dir/node"/* "$dir/client"/*
}

# RAFTKV_PEERS as the StatefulSet gives it: every member's stable DNS name.
docker_peers() {
  local ordinal peers=()
  for ordinal in "${!PODS[@]}"; do
    peers+=("$((ordinal + 1))=$(fqdn_of "${PODS[ordinal]}"):$PEER_PORT")
  done
  local IFS=,
  echo "${peers[*]}"
}

docker_client_endpoints() {
  local pod endpoints=()
  for pod in "${PODS[@]}"; do
    endpoints+=("$(endpoint_of "$pod")")
  done
  local IFS=,
  echo "${endpoints[*]}"
}

# Starts the container of pod $1 on its volume: what the StatefulSet controller does.
# The settings mirror the pod's: read-only root, no capabilities, the image's non-root
# user; SIGTERM gets 30 s, like the pod's grace period, for the leadership hand-over.
# Logs stay text (the pods log JSON), without colours: CI prints them on a failure.
docker_start_replica() {
  local pod=$1 ordinal=${1##*-}
  docker run --detach --quiet --name "$pod" --hostname "$pod" --label "$DOCKER_LABEL" \
    --network "$DOCKER_NETWORK" --network-alias "$pod.$PEER_SERVICE" \
    --network-alias "$(fqdn_of "$pod")" --volume "raftkv-data-$ordinal:/var/lib/raftkv" \
    --volume "$WORK/tls/node:$TLS_MOUNT:ro" --env "RAFTKV_TLS_DIR=$TLS_MOUNT" \
    --read-only --cap-drop ALL --security-opt no-new-privileges --stop-timeout 30 \
    --env "RAFTKV_POD_NAME=$pod" \
    --env "RAFTKV_LISTEN_PEER=0.0.0.0:$PEER_PORT" --env "RAFTKV_LISTEN_CLIENT=0.0.0.0:$CLIENT_PORT" \
    --env "RAFTKV_LISTEN_HTTP=0.0.0.0:7201" \
    --env "RAFTKV_PEERS=$(docker_peers)" \
    --env "RAFTKV_ADVERTISE_CLIENT=$(endpoint_of "$pod")" \
    --env "RAFTKV_ADVERTISE_PEER=$(fqdn_of "$pod"):$PEER_PORT" \
    --env "RUST_LOG=${RUST_LOG:-info}" --env NO_COLOR=1 \
    "$IMAGE" >/dev/null
}

driver_check() {
  command -v docker >/dev/null || fail "docker is not installed"
  docker image inspect "$IMAGE" >/dev/null 2>&1 ||
    fail "no image $IMAGE: build it first (k8s/build-image.sh $IMAGE)"
}

# Removes every container, the network and the volumes of this driver (an earlier run's
# leftovers too).
driver_down() {
  local containers volumes
  containers=$(docker ps --all --quiet --filter "label=$DOCKER_LABEL")
  if [[ -n $containers ]]; then
    # shellcheck disable=SC2086 # one id per word
    docker rm --force --volumes $containers >/dev/null
  fi
  if [[ -n $(docker network ls --quiet --filter "label=$DOCKER_LABEL" --filter "name=^$DOCKER_NETWORK\$") ]]; then
    docker network rm "$DOCKER_NETWORK" >/dev/null
  fi
  volumes=$(docker volume ls --quiet --filter "label=$DOCKER_LABEL")
  if [[ -n $volumes ]]; then
    # shellcheck disable=SC2086 # one name per word
    docker volume rm $volumes >/dev/null
  fi
}

driver_up() {
  driver_down
  docker network create --label "$DOCKER_LABEL" "$DOCKER_NETWORK" >/dev/null
  docker_make_certificates
  local ordinal
  for ordinal in "${!PODS[@]}"; do
    docker volume create --label "$DOCKER_LABEL" "raftkv-data-$ordinal" >/dev/null
    docker_start_replica "${PODS[ordinal]}"
  done
  docker run --detach --quiet --name "$CLIENT_POD" --hostname "$CLIENT_POD" --label "$DOCKER_LABEL" \
    --network "$DOCKER_NETWORK" --read-only --cap-drop ALL --security-opt no-new-privileges \
    --env "RAFTKV_ENDPOINTS=$(docker_client_endpoints)" --volume "$WORK/tls/client:$TLS_MOUNT:ro" \
    --env "RAFTKV_TLS_CERT=$TLS_MOUNT/client.crt" --env "RAFTKV_TLS_KEY=$TLS_MOUNT/client.key" \
    --env "RAFTKV_TLS_CA=$TLS_MOUNT/ca.crt" \
    --entrypoint raftkv "$IMAGE" idle >/dev/null
  info "network $DOCKER_NETWORK; containers ${PODS[*]} (image $IMAGE, volumes raftkv-data-0..$((${#PODS[@]} - 1)))" \
    "and $CLIENT_POD (raftkv idle); mutual TLS, certificates of \`raftkv certs init\` at $TLS_MOUNT"
}

# The replicas' containers (raftkv-0, raftkv-1, ..., scale-ups included), in ordinal order.
docker_replicas() {
  docker ps --all --filter "label=$DOCKER_LABEL" --format '{{.Names}}' |
    grep -E '^raftkv-[0-9]+$' | sort -t- -k2 -n || true
}

driver_logs() {
  local pod
  for pod in $(docker_replicas); do
    echo "--- last log lines of $pod"
    docker logs --tail 30 "$pod" 2>&1 || true
  done
}

# The replicas speak TLS only: none logged the --insecure warning, and a CLI without a
# certificate (plain TCP, from a container of its own on the network) gets no answer.
tls_enforced() {
  local pod
  for pod in "${PODS[@]}"; do
    if docker logs "$pod" 2>&1 | grep -q -- '--insecure'; then
      fail "$pod runs with --insecure"
    fi
  done
  ok "no replica logged the --insecure warning (RAFTKV_TLS_DIR=$TLS_MOUNT)"
  if docker run --rm --quiet --label "$DOCKER_LABEL" --network "$DOCKER_NETWORK" --read-only \
    --entrypoint raftkv "$IMAGE" --endpoints "$(docker_client_endpoints)" --timeout-ms 2000 \
    status >"$WORK/plain.out" 2>&1; then
    fail "raftkv status over plain TCP succeeded: $(cat "$WORK/plain.out")"
  fi
  ok "raftkv status without a certificate (plain TCP) fails: $(tail -n 1 "$WORK/plain.out")"
}

# raftkv in the client container.
cli() {
  docker exec "$CLIENT_POD" raftkv "$@"
}

# Each container is its own "worker"; this checks that all run, each in its own container.
replicas_on_distinct_workers() {
  local pod state
  for pod in "${PODS[@]}"; do
    state=$(docker inspect --format '{{.State.Status}} {{slice .Id 0 12}}' "$pod" 2>/dev/null) ||
      fail "$pod does not exist"
    [[ ${state%% *} == running ]] || fail "$pod is ${state%% *}, not running"
    ok "$pod running in container ${state#* }, its own worker"
  done
}

worker_of() {
  echo "$1"
}

client_worker() {
  echo "$CLIENT_POD"
}

# `docker rm -f`: SIGKILL, like a pod whose node vanished; the volume stays.
delete_pod() {
  docker rm --force "$1" >/dev/null
}

# The StatefulSet's part: a new container with the same name, alias and volume.
wait_recreated() {
  docker_start_replica "$1"
}

# SIGTERM (a leader hands over first), then SIGKILL after the stop timeout.
stop_worker() {
  docker stop "$1" >/dev/null
}

start_worker() {
  docker start "$1" >/dev/null
}

supports_partition() {
  return 0
}

# Cuts pod $1 off the network: its name stops resolving and it reaches no one.
partition() {
  docker network disconnect "$DOCKER_NETWORK" "$1"
}

heal() {
  docker network connect --alias "$1.$PEER_SERVICE" --alias "$(fqdn_of "$1")" "$DOCKER_NETWORK" "$1"
}

# `kubectl scale statefulset raftkv --replicas N` upwards: the pods raftkv-<ordinal> for
# the ordinals up to N, each on a new volume; they join the cluster by themselves.
scale_up() {
  local target=$1 ordinal
  for ((ordinal = ${#PODS[@]}; ordinal < target; ordinal++)); do
    docker volume create --label "$DOCKER_LABEL" "raftkv-data-$ordinal" >/dev/null
    docker_start_replica "raftkv-$ordinal"
  done
}

# k8s/scale.sh N, the operator's procedure, run as it is: its kubectl calls go to
# k8s/lib/kubectl-docker.sh, which does them with docker on this driver's containers.
scale_down() {
  local shim="$WORK/kubectl-docker"
  mkdir -p "$shim"
  ln -sf "$PWD/k8s/lib/kubectl-docker.sh" "$shim/kubectl"
  PATH="$shim:$PATH" DOCKER_LABEL=$DOCKER_LABEL CLIENT_POD=$CLIENT_POD NAMESPACE=$NAMESPACE \
    SCALE_TIMEOUT_S=$SCALE_TIMEOUT_S k8s/scale.sh "$1" 2>&1 | sed 's/^/      /'
}

# Checks that scale_down removed the pod's container and volume.
scaled_away() {
  ! docker container inspect "$1" >/dev/null 2>&1 || fail "container $1 is still there"
  ! docker volume inspect "raftkv-data-${1##*-}" >/dev/null 2>&1 || fail "volume raftkv-data-${1##*-} is still there"
}

# A lost volume: stop the replica (SIGTERM), remove its container and volume, start it
# again on a new, empty volume of the same name. Returns once the container runs.
wipe_replica() {
  local pod=$1 ordinal=${1##*-}
  docker stop "$pod" >/dev/null
  docker rm "$pod" >/dev/null
  docker volume rm "raftkv-data-$ordinal" >/dev/null
  docker volume create --label "$DOCKER_LABEL" "raftkv-data-$ordinal" >/dev/null
  docker_start_replica "$pod"
}
