#!/usr/bin/env python3
"""Checks the properties raftkv's Kubernetes manifests must keep.

The schema validation (kubernetes-validate --strict) proves the rendered manifests are
well-formed; this proves they still say what the design needs, so that an edit cannot
silently drop, say, the required anti-affinity or publishNotReadyAddresses.

    kubectl kustomize k8s/overlays/kind > deployment.yaml
    k8s/check_manifests.py --set deployment deployment.yaml
    kubectl kustomize k8s/overlays/kind-smoke | k8s/check_manifests.py --set smoke -
    k8s/check_manifests.py --self-test deployment.yaml smoke.yaml

Prints one line per check and exits 1 if any fails. `--self-test` first checks the given
renderings pass, then mutates them one property at a time (anti-affinity removed, probe
path changed, PDB widened, ...) and asserts that each mutation is caught by the check
responsible for it. Needs PyYAML.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import yaml

STATEFULSET = "raftkv"
PEER_SERVICE = "raftkv-peer"
CLIENT_SERVICE = "raftkv"
CLIENT_POD = "raftkv-client"
SMOKE_JOB = "raftkv-smoke"
SERVER_LABEL = ("app.kubernetes.io/name", "raftkv")
REPLICAS = 3
# Pods a scale-up adds (raftkv-3, raftkv-4) run the same template: their environment is
# checked too, though RAFTKV_PEERS must not name them.
SCALED_REPLICAS = 5
RUN_AS = 65532
PEER_PORT, CLIENT_PORT, HTTP_PORT = 7001, 7101, 7201
CLUSTER_DOMAIN = "cluster.local"
# Startup probe budget: recovery (journal replay, snapshot load) must fit. See the
# comment on the startup probe in k8s/base/statefulset.yaml.
STARTUP_BUDGET_SECONDS_MIN = 180
# Liveness must not restart a node that is merely slow for a few seconds (an fsync stall).
LIVENESS_BUDGET_SECONDS_MIN = 10
# raftkv-node defaults (node/src/config.rs): a leader waits at most 2 x election ticks max
# x tick for its leadership transfer on SIGTERM.
TICK_MS_DEFAULT = 10
ELECTION_TICKS_MAX_DEFAULT = 30
GRACE_SECONDS_MIN = 10
GRACE_TRANSFER_MARGIN = 5
SMOKE_BACKOFF_LIMIT_MAX = 3
# TLS (issue 11): the StatefulSet finds ca.crt and node-<id>.crt/.key in RAFTKV_TLS_DIR,
# its Secret; client pods name their three files, from theirs. Never plain TCP.
NODE_TLS_SECRET = "raftkv-tls"
CLIENT_TLS_SECRET = "raftkv-client-tls"
CLIENT_TLS_VARIABLES = ("RAFTKV_TLS_CERT", "RAFTKV_TLS_KEY", "RAFTKV_TLS_CA")
# The node's own three (its --tls-cert/--tls-key/--tls-ca): one value for every replica.
NODE_TLS_VARIABLES = ("RAFTKV_NODE_TLS_CERT", "RAFTKV_NODE_TLS_KEY", "RAFTKV_NODE_TLS_CA")
# Octal 0440: keys readable by the pods' group (fsGroup) only, never by others.
TLS_MODE_MAX = 0o440


class Problem(Exception):
    """A failed expectation; the message says what was found."""


@dataclass
class Check:
    ident: str
    title: str
    run: Callable[["Manifests"], None]


@dataclass
class Manifests:
    documents: list[dict[str, Any]]
    image: str | None = None
    pull_policy: str | None = None
    notes: list[str] = field(default_factory=list)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.documents if d.get("kind") == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.all(kind) if d.get("metadata", {}).get("name") == name]
        if len(found) != 1:
            raise Problem(f"expected exactly one {kind} {shown(name)}, found {len(found)}")
        return found[0]


def get(node: Any, *path: str | int, default: Any = None) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return default
            node = node[step]
        else:
            if not isinstance(node, dict) or step not in node:
                return default
            node = node[step]
    return node


def shown(value: Any) -> str:
    return "absent" if value is None else repr(value)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Problem(message)


def namespace_of(document: dict[str, Any]) -> str:
    namespace = get(document, "metadata", "namespace")
    expect(
        bool(namespace), f"{document.get('kind')} {shown(get(document, 'metadata', 'name'))} has no namespace"
    )
    return namespace


def pod_specs(manifests: Manifests) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(description, pod metadata, pod spec) of every pod the manifests create."""
    specs = []
    for document in manifests.documents:
        kind, name = document.get("kind"), get(document, "metadata", "name")
        if kind == "Pod":
            specs.append((f"Pod {name}", document.get("metadata", {}), document.get("spec", {})))
        elif kind in ("StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job"):
            template = get(document, "spec", "template", default={})
            specs.append((f"{kind} {name}", template.get("metadata", {}), template.get("spec", {})))
        elif kind == "CronJob":
            template = get(document, "spec", "jobTemplate", "spec", "template", default={})
            specs.append((f"{kind} {name}", template.get("metadata", {}), template.get("spec", {})))
    return specs


def only_container(spec: dict[str, Any], where: str) -> dict[str, Any]:
    containers = spec.get("containers") or []
    expect(len(containers) == 1, f"{where}: expected one container, found {len(containers)}")
    return containers[0]


def expand_environment(container: dict[str, Any], pod_name: str, namespace: str) -> dict[str, str]:
    """The container's environment as the kubelet computes it: fieldRefs resolved, and
    $(VAR) replaced only when VAR is defined EARLIER in the list ($$ escapes a $)."""
    values: dict[str, str] = {}
    field_values = {"metadata.name": pod_name, "metadata.namespace": namespace}
    for variable in container.get("env") or []:
        name = variable["name"]
        if "value" in variable:
            text = str(variable["value"])

            def substitute(match: re.Match[str]) -> str:
                if match.group(0) == "$$":
                    return "$"
                return values.get(match.group(1), match.group(0))

            values[name] = re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", substitute, text)
        elif get(variable, "valueFrom", "fieldRef", "fieldPath") in field_values:
            values[name] = field_values[variable["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            values[name] = f"<unresolved {name}>"
    return values


def replica_host(ordinal: int, namespace: str) -> str:
    return f"{STATEFULSET}-{ordinal}.{PEER_SERVICE}.{namespace}.svc.{CLUSTER_DOMAIN}"


def expected_endpoints(namespace: str) -> list[str]:
    return [f"{replica_host(ordinal, namespace)}:{CLIENT_PORT}" for ordinal in range(REPLICAS)]


def container_port(container: dict[str, Any], port: Any, where: str) -> int:
    if isinstance(port, int):
        return port
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return declared["containerPort"]
    raise Problem(
        f"{where}: port {shown(port)} is not a named port of container {shown(container.get('name'))}"
    )


def selector_matches(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(key) == value for key, value in selector.items())


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


# ---------------------------------------------------------------------------- the checks


def check_namespace(manifests: Manifests) -> None:
    statefulset = manifests.one("StatefulSet", STATEFULSET)
    namespace = namespace_of(statefulset)
    document = manifests.one("Namespace", namespace)
    labels = get(document, "metadata", "labels", default={})
    expect(
        labels.get("pod-security.kubernetes.io/enforce") == "restricted",
        f"Namespace {namespace}: pod-security.kubernetes.io/enforce is "
        f"{shown(labels.get('pod-security.kubernetes.io/enforce'))}, not 'restricted'",
    )
    for document in manifests.documents:
        if document.get("kind") != "Namespace":
            expect(
                namespace_of(document) == namespace,
                f"{document['kind']} {document['metadata']['name']} is not in {namespace}",
            )


def check_peer_service(manifests: Manifests) -> None:
    service = manifests.one("Service", PEER_SERVICE)
    spec = service.get("spec", {})
    expect(
        spec.get("clusterIP") == "None", f"clusterIP is {shown(spec.get('clusterIP'))}, not 'None' (headless)"
    )
    expect(
        spec.get("publishNotReadyAddresses") is True,
        f"publishNotReadyAddresses is {shown(spec.get('publishNotReadyAddresses'))}, not true",
    )
    expect(spec.get("selector") == dict([SERVER_LABEL]), f"selector is {shown(spec.get('selector'))}")
    check_service_ports(manifests, service, {"peer": PEER_PORT, "client": CLIENT_PORT, "http": HTTP_PORT})


def check_client_service(manifests: Manifests) -> None:
    service = manifests.one("Service", CLIENT_SERVICE)
    spec = service.get("spec", {})
    expect(spec.get("type", "ClusterIP") == "ClusterIP", f"type is {shown(spec.get('type'))}")
    expect(spec.get("clusterIP") != "None", "clusterIP is None: clients need a virtual IP")
    expect(spec.get("selector") == dict([SERVER_LABEL]), f"selector is {shown(spec.get('selector'))}")
    check_service_ports(manifests, service, {"client": CLIENT_PORT})


def check_service_ports(manifests: Manifests, service: dict[str, Any], wanted: dict[str, int]) -> None:
    container = only_container(
        get(manifests.one("StatefulSet", STATEFULSET), "spec", "template", "spec"), "StatefulSet"
    )
    ports = {port.get("name"): port for port in get(service, "spec", "ports", default=[])}
    for name, number in wanted.items():
        expect(name in ports, f"Service {service['metadata']['name']}: no port named {shown(name)}")
        port = ports[name]
        expect(port.get("port") == number, f"port {name} is {port.get('port')}, not {number}")
        target = container_port(container, port.get("targetPort", number), f"port {name}")
        expect(target == number, f"port {name} targets container port {target}, not {number}")


def check_statefulset_shape(manifests: Manifests) -> None:
    statefulset = manifests.one("StatefulSet", STATEFULSET)
    spec = statefulset.get("spec", {})
    expect(spec.get("replicas") == REPLICAS, f"replicas is {shown(spec.get('replicas'))}, not {REPLICAS}")
    expect(
        spec.get("podManagementPolicy") == "Parallel",
        f"podManagementPolicy is {shown(spec.get('podManagementPolicy'))}, not 'Parallel'",
    )
    expect(
        spec.get("serviceName") == PEER_SERVICE,
        f"serviceName is {shown(spec.get('serviceName'))}, not {shown(PEER_SERVICE)}",
    )
    selector = get(spec, "selector", "matchLabels", default={})
    expect(selector == dict([SERVER_LABEL]), f"selector is {shown(selector)}")
    expect(
        selector_matches(selector, get(spec, "template", "metadata", "labels")),
        "the pod template's labels do not match the selector",
    )


def check_anti_affinity(manifests: Manifests) -> None:
    template = get(manifests.one("StatefulSet", STATEFULSET), "spec", "template", default={})
    terms = get(
        template,
        "spec",
        "affinity",
        "podAntiAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
        default=[],
    )
    own_labels = get(template, "metadata", "labels", default={})
    for term in terms:
        selector = get(term, "labelSelector", default={})
        if (
            term.get("topologyKey") == "kubernetes.io/hostname"
            and not selector.get("matchExpressions")
            and selector_matches(selector.get("matchLabels"), own_labels)
            and not term.get("namespaceSelector")
            and not term.get("namespaces")
        ):
            return
    raise Problem(
        "no requiredDuringSchedulingIgnoredDuringExecution podAntiAffinity term with topologyKey "
        f"kubernetes.io/hostname selecting the StatefulSet's own pods (found {shown(terms)})"
    )


def check_probes(manifests: Manifests) -> None:
    spec = get(manifests.one("StatefulSet", STATEFULSET), "spec", "template", "spec")
    container = only_container(spec, "StatefulSet")
    environment = expand_environment(container, f"{STATEFULSET}-0", "ns")
    http_port = port_of(environment.get("RAFTKV_LISTEN_HTTP", f"0.0.0.0:{HTTP_PORT}"))
    budgets = {}
    for probe_name, path in (
        ("startupProbe", "/livez"),
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
    ):
        probe = container.get(probe_name)
        expect(probe is not None, f"no {probe_name}")
        get_action = probe.get("httpGet")
        expect(get_action is not None, f"{probe_name} is not an httpGet probe")
        expect(
            get_action.get("path") == path,
            f"{probe_name} path is {shown(get_action.get('path'))}, not {shown(path)}",
        )
        expect(
            get_action.get("scheme") == "HTTPS",
            f"{probe_name} scheme is {shown(get_action.get('scheme', 'HTTP'))}, not 'HTTPS' (the ops port serves TLS)",
        )
        port = container_port(container, get_action.get("port"), probe_name)
        expect(port == http_port, f"{probe_name} port {port} is not the ops HTTP port {http_port}")
        budgets[probe_name] = probe.get("initialDelaySeconds", 0) + probe.get(
            "periodSeconds", 10
        ) * probe.get("failureThreshold", 3)
    expect(
        budgets["startupProbe"] >= STARTUP_BUDGET_SECONDS_MIN,
        f"startup probe gives recovery {budgets['startupProbe']} s, less than {STARTUP_BUDGET_SECONDS_MIN} s",
    )
    expect(
        budgets["livenessProbe"] >= LIVENESS_BUDGET_SECONDS_MIN,
        f"liveness probe restarts after {budgets['livenessProbe']} s, less than {LIVENESS_BUDGET_SECONDS_MIN} s",
    )


def check_data_volume(manifests: Manifests) -> None:
    statefulset = manifests.one("StatefulSet", STATEFULSET)
    claims = {
        get(claim, "metadata", "name"): claim
        for claim in get(statefulset, "spec", "volumeClaimTemplates", default=[])
    }
    expect("data" in claims, f"no volumeClaimTemplate named 'data' (found {shown(sorted(claims))})")
    claim_spec = claims["data"].get("spec", {})
    expect(
        "ReadWriteOnce" in (claim_spec.get("accessModes") or []),
        f"accessModes {shown(claim_spec.get('accessModes'))} lack ReadWriteOnce",
    )
    expect(bool(get(claim_spec, "resources", "requests", "storage")), "the data claim requests no storage")
    spec = get(statefulset, "spec", "template", "spec")
    volumes = [volume.get("name") for volume in spec.get("volumes") or []]
    expect("data" not in volumes, "a pod volume named 'data' shadows the volumeClaimTemplate")
    container = only_container(spec, "StatefulSet")
    data_dir = expand_environment(container, f"{STATEFULSET}-0", "ns").get("RAFTKV_DATA_DIR")
    expect(bool(data_dir), "RAFTKV_DATA_DIR is not set")
    mounts = [mount for mount in container.get("volumeMounts") or [] if mount.get("name") == "data"]
    expect(len(mounts) == 1, f"the data volume is mounted {len(mounts)} times")
    expect(
        mounts[0].get("mountPath") == data_dir,
        f"the data volume is mounted at {shown(mounts[0].get('mountPath'))}, RAFTKV_DATA_DIR is {shown(data_dir)}",
    )
    expect(
        not mounts[0].get("readOnly") and not mounts[0].get("subPath"),
        "the data volume is mounted read-only or with a subPath",
    )


def check_node_environment(manifests: Manifests) -> None:
    statefulset = manifests.one("StatefulSet", STATEFULSET)
    namespace = namespace_of(statefulset)
    container = only_container(get(statefulset, "spec", "template", "spec"), "StatefulSet")
    pod_name_source = [v for v in container.get("env") or [] if v["name"] == "RAFTKV_POD_NAME"]
    expect(
        len(pod_name_source) == 1
        and get(pod_name_source[0], "valueFrom", "fieldRef", "fieldPath") == "metadata.name",
        "RAFTKV_POD_NAME does not come from metadata.name",
    )
    names = [variable["name"] for variable in container.get("env") or []]
    expect("RAFTKV_ID" not in names, "RAFTKV_ID is set: every replica would claim the same id")
    expected_peers = ",".join(
        f"{ordinal + 1}={replica_host(ordinal, namespace)}:{PEER_PORT}" for ordinal in range(REPLICAS)
    )
    for ordinal in range(SCALED_REPLICAS):
        pod_name = f"{STATEFULSET}-{ordinal}"
        environment = expand_environment(container, pod_name, namespace)
        expect(
            environment.get("RAFTKV_POD_NAME") == pod_name,
            f"{pod_name}: RAFTKV_POD_NAME is {shown(environment.get('RAFTKV_POD_NAME'))}",
        )
        expect(
            environment.get("RAFTKV_PEERS") == expected_peers,
            f"{pod_name}: RAFTKV_PEERS is {shown(environment.get('RAFTKV_PEERS'))}, expected {shown(expected_peers)}",
        )
        advertise = f"{replica_host(ordinal, namespace)}:{CLIENT_PORT}"
        expect(
            environment.get("RAFTKV_ADVERTISE_CLIENT") == advertise,
            f"{pod_name}: RAFTKV_ADVERTISE_CLIENT is {shown(environment.get('RAFTKV_ADVERTISE_CLIENT'))}, expected {shown(advertise)}",
        )
        # The address the member records in the configuration: a pod not in RAFTKV_PEERS
        # (a scale-up) cannot join without it, and for an initial member the node refuses
        # to start if it differs from its RAFTKV_PEERS entry.
        advertise_peer = f"{replica_host(ordinal, namespace)}:{PEER_PORT}"
        expect(
            environment.get("RAFTKV_ADVERTISE_PEER") == advertise_peer,
            f"{pod_name}: RAFTKV_ADVERTISE_PEER is {shown(environment.get('RAFTKV_ADVERTISE_PEER'))}, expected {shown(advertise_peer)}",
        )
    environment = expand_environment(container, f"{STATEFULSET}-0", namespace)
    for variable, port_name, number in (
        ("RAFTKV_LISTEN_PEER", "peer", PEER_PORT),
        ("RAFTKV_LISTEN_CLIENT", "client", CLIENT_PORT),
        ("RAFTKV_LISTEN_HTTP", "http", HTTP_PORT),
    ):
        address = environment.get(variable, f"0.0.0.0:{number}")
        expect(address == f"0.0.0.0:{number}", f"{variable} is {shown(address)}, not 0.0.0.0:{number}")
        expect(
            container_port(container, port_name, variable) == number,
            f"container port {port_name} is not {number}",
        )
    expect(
        environment.get("RAFTKV_LOG_FORMAT") == "json",
        f"RAFTKV_LOG_FORMAT is {shown(environment.get('RAFTKV_LOG_FORMAT'))}, not 'json'",
    )


def check_grace_period(manifests: Manifests) -> None:
    spec = get(manifests.one("StatefulSet", STATEFULSET), "spec", "template", "spec")
    environment = expand_environment(only_container(spec, "StatefulSet"), f"{STATEFULSET}-0", "ns")
    tick_ms = int(environment.get("RAFTKV_TICK_MS", TICK_MS_DEFAULT))
    election_ticks_max = int(environment.get("RAFTKV_ELECTION_TICKS_MAX", ELECTION_TICKS_MAX_DEFAULT))
    transfer_seconds = 2 * election_ticks_max * tick_ms / 1000
    bound = max(GRACE_SECONDS_MIN, GRACE_TRANSFER_MARGIN * transfer_seconds)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    expect(
        grace >= bound,
        f"terminationGracePeriodSeconds {grace} < {bound:g} (max({GRACE_SECONDS_MIN}, {GRACE_TRANSFER_MARGIN} x the "
        f"{transfer_seconds:g} s leadership transfer bound))",
    )
    manifests.notes.append(f"grace {grace} s >= {bound:g} s (transfer bound {transfer_seconds:g} s)")


def check_pdb(manifests: Manifests) -> None:
    budgets = manifests.all("PodDisruptionBudget")
    template_labels = get(manifests.one("StatefulSet", STATEFULSET), "spec", "template", "metadata", "labels")
    covering = [
        b for b in budgets if selector_matches(get(b, "spec", "selector", "matchLabels"), template_labels)
    ]
    expect(
        len(covering) == 1, f"expected one PodDisruptionBudget selecting the servers, found {len(covering)}"
    )
    spec = covering[0]["spec"]
    expect(spec.get("maxUnavailable") == 1, f"maxUnavailable is {shown(spec.get('maxUnavailable'))}, not 1")
    expect("minAvailable" not in spec, "minAvailable is set as well")
    expect(
        spec.get("unhealthyPodEvictionPolicy", "IfHealthyBudget") == "IfHealthyBudget",
        f"unhealthyPodEvictionPolicy is {shown(spec.get('unhealthyPodEvictionPolicy'))}",
    )
    expect(not get(spec, "selector", "matchExpressions"), "the selector has matchExpressions")


def check_client_endpoints(
    description: str, container: dict[str, Any], namespace: str, pod_name: str
) -> None:
    endpoints = expand_environment(container, pod_name, namespace).get("RAFTKV_ENDPOINTS", "")
    expect(
        endpoints.split(",") == expected_endpoints(namespace),
        f"{description}: RAFTKV_ENDPOINTS is {shown(endpoints)}, expected {shown(','.join(expected_endpoints(namespace)))}",
    )


def check_client_pod(manifests: Manifests) -> None:
    pod = manifests.one("Pod", CLIENT_POD)
    container = only_container(pod.get("spec", {}), "client Pod")
    command = (container.get("command") or []) + (container.get("args") or [])
    expect(command == ["raftkv", "idle"], f"command is {shown(command)}, not ['raftkv', 'idle']")
    check_client_endpoints("client Pod", container, namespace_of(pod), CLIENT_POD)


def check_no_job_in_deployment(manifests: Manifests) -> None:
    jobs = [get(job, "metadata", "name") for job in manifests.all("Job")]
    expect(
        not jobs,
        f"the deployment contains Job(s) {shown(jobs)}: the smoke test is applied after the rollout (k8s/smoke)",
    )


def check_smoke_job(manifests: Manifests) -> None:
    job = manifests.one("Job", SMOKE_JOB)
    expect([d.get("kind") for d in manifests.documents] == ["Job"], "the smoke set holds more than the Job")
    spec = job.get("spec", {})
    backoff = spec.get("backoffLimit", 6)
    expect(
        backoff <= SMOKE_BACKOFF_LIMIT_MAX, f"backoffLimit is {backoff}, more than {SMOKE_BACKOFF_LIMIT_MAX}"
    )
    pod_spec = get(spec, "template", "spec", default={})
    expect(
        pod_spec.get("restartPolicy") == "Never",
        f"restartPolicy is {shown(pod_spec.get('restartPolicy'))}, not 'Never'",
    )
    container = only_container(pod_spec, "Job")
    command = (container.get("command") or []) + (container.get("args") or [])
    expect(command[:2] == ["raftkv", "smoke"], f"command is {shown(command)}, not raftkv smoke")
    check_client_endpoints("Job", container, namespace_of(job), f"{SMOKE_JOB}-x")


def check_security(manifests: Manifests) -> None:
    specs = pod_specs(manifests)
    expect(bool(specs), "no pods")
    for where, _metadata, spec in specs:
        pod = spec.get("securityContext") or {}
        expect(
            pod.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot is {shown(pod.get('runAsNonRoot'))}"
        )
        for key in ("runAsUser", "runAsGroup", "fsGroup"):
            expect(pod.get(key) == RUN_AS, f"{where}: pod {key} is {shown(pod.get(key))}, not {RUN_AS}")
        expect(
            get(pod, "seccompProfile", "type") == "RuntimeDefault",
            f"{where}: pod seccompProfile is {shown(pod.get('seccompProfile'))}",
        )
        for field_name in ("hostNetwork", "hostPID", "hostIPC"):
            expect(not spec.get(field_name), f"{where}: {field_name} is set")
        for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            context = container.get("securityContext") or {}
            name = f"{where} container {container.get('name')}"
            expect(
                context.get("allowPrivilegeEscalation") is False,
                f"{name}: allowPrivilegeEscalation is {shown(context.get('allowPrivilegeEscalation'))}",
            )
            expect(
                context.get("readOnlyRootFilesystem") is True,
                f"{name}: readOnlyRootFilesystem is {shown(context.get('readOnlyRootFilesystem'))}",
            )
            expect(not context.get("privileged"), f"{name}: privileged")
            expect(
                context.get("runAsNonRoot", True) is True,
                f"{name}: runAsNonRoot is {shown(context.get('runAsNonRoot'))}",
            )
            for key in ("runAsUser", "runAsGroup"):
                expect(context.get(key, RUN_AS) == RUN_AS, f"{name}: {key} is {shown(context.get(key))}")
            expect(
                get(context, "seccompProfile", "type", default="RuntimeDefault") == "RuntimeDefault",
                f"{name}: seccompProfile overridden",
            )
            capabilities = context.get("capabilities") or {}
            expect(
                "ALL" in (capabilities.get("drop") or []),
                f"{name}: capabilities.drop is {shown(capabilities.get('drop'))}, lacks ALL",
            )
            expect(
                not capabilities.get("add"), f"{name}: capabilities.add is {shown(capabilities.get('add'))}"
            )


def secret_mount(spec: dict[str, Any], container: dict[str, Any], path: str, where: str) -> str:
    """The Secret mounted (whole, read-only) at the directory holding `path`."""
    directory = path.rsplit("/", 1)[0] if not path.endswith("/") else path.rstrip("/")
    mounts = [m for m in container.get("volumeMounts") or [] if m.get("mountPath", "").rstrip("/") == directory]
    expect(len(mounts) == 1, f"{where}: nothing is mounted at {shown(directory)} (for {shown(path)})")
    mount = mounts[0]
    expect(mount.get("readOnly") is True, f"{where}: the mount at {shown(directory)} is not readOnly")
    # A subPath mount never sees an update of its Secret: certificates could not rotate.
    expect(
        not mount.get("subPath") and not mount.get("subPathExpr"),
        f"{where}: the mount at {shown(directory)} uses a subPath (a Secret update would never reach it)",
    )
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") == mount.get("name")]
    expect(len(volumes) == 1, f"{where}: no volume {shown(mount.get('name'))}")
    secret = volumes[0].get("secret")
    expect(secret is not None, f"{where}: volume {shown(mount.get('name'))} is not a Secret")
    mode = secret.get("defaultMode", 0o644)
    expect(
        mode & ~TLS_MODE_MAX == 0,
        f"{where}: Secret {shown(secret.get('secretName'))} is mounted with mode {mode:o}, wider than {TLS_MODE_MAX:o}",
    )
    return str(secret.get("secretName"))


def check_tls(manifests: Manifests) -> None:
    specs = pod_specs(manifests)
    expect(bool(specs), "no pods")
    for where, _metadata, spec in specs:
        for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            name = f"{where} container {container.get('name')}"
            names = [variable["name"] for variable in container.get("env") or []]
            expect("RAFTKV_INSECURE" not in names, f"{name}: RAFTKV_INSECURE is set (plain TCP)")
            expect(
                not any("--insecure" in str(arg) for arg in (container.get("command") or []) + (container.get("args") or [])),
                f"{name}: runs with --insecure (plain TCP)",
            )
            expect(not container.get("envFrom"), f"{name}: envFrom could set RAFTKV_* (RAFTKV_INSECURE) unseen")
            environment = expand_environment(container, "raftkv-0", "ns")
            if where == f"StatefulSet {STATEFULSET}":
                for variable in NODE_TLS_VARIABLES:
                    expect(variable not in names, f"{name}: {variable} is set: every replica would use the same files")
                for variable in CLIENT_TLS_VARIABLES:
                    expect(variable not in names, f"{name}: {variable} is a client setting")
                directory = environment.get("RAFTKV_TLS_DIR")
                expect(bool(directory), f"{name}: RAFTKV_TLS_DIR is not set: the node would refuse to start")
                secret = secret_mount(spec, container, directory.rstrip("/") + "/", name)
                expect(
                    secret == NODE_TLS_SECRET,
                    f"{name}: RAFTKV_TLS_DIR is Secret {shown(secret)}, not {shown(NODE_TLS_SECRET)}",
                )
            else:
                expect("RAFTKV_TLS_DIR" not in names, f"{name}: RAFTKV_TLS_DIR is a node setting")
                for variable in CLIENT_TLS_VARIABLES:
                    path = environment.get(variable)
                    expect(bool(path), f"{name}: {variable} is not set: the CLI would speak plain TCP")
                    secret = secret_mount(spec, container, path, name)
                    expect(
                        secret == CLIENT_TLS_SECRET,
                        f"{name}: {variable} is in Secret {shown(secret)}, not {shown(CLIENT_TLS_SECRET)}",
                    )


def check_resources(manifests: Manifests) -> None:
    for where, _metadata, spec in pod_specs(manifests):
        for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            resources = container.get("resources") or {}
            name = f"{where} container {container.get('name')}"
            for key in ("cpu", "memory"):
                expect(bool(get(resources, "requests", key)), f"{name}: no {key} request")
            expect(bool(get(resources, "limits", "memory")), f"{name}: no memory limit")


def check_pod_isolation(manifests: Manifests) -> None:
    for where, _metadata, spec in pod_specs(manifests):
        expect(
            spec.get("enableServiceLinks") is False,
            f"{where}: enableServiceLinks is {shown(spec.get('enableServiceLinks'))}: Services would inject RAFTKV_* variables",
        )
        expect(
            spec.get("automountServiceAccountToken") is False,
            f"{where}: automountServiceAccountToken is {shown(spec.get('automountServiceAccountToken'))}",
        )


def check_server_label(manifests: Manifests) -> None:
    server = dict([SERVER_LABEL])
    for where, metadata, _spec in pod_specs(manifests):
        if where == f"StatefulSet {STATEFULSET}":
            continue
        expect(
            not selector_matches(server, metadata.get("labels")),
            f"{where} carries {SERVER_LABEL[0]}={SERVER_LABEL[1]}: the servers' Services, PDB and anti-affinity would count it",
        )


def check_images(manifests: Manifests) -> None:
    images = set()
    for where, _metadata, spec in pod_specs(manifests):
        for container in spec.get("containers") or []:
            images.add(container.get("image"))
            if manifests.pull_policy is not None:
                expect(
                    container.get("imagePullPolicy") == manifests.pull_policy,
                    f"{where}: imagePullPolicy is {shown(container.get('imagePullPolicy'))}, not {shown(manifests.pull_policy)}",
                )
    expect(len(images) == 1, f"containers use different images: {shown(sorted(map(str, images)))}")
    image = images.pop()
    if manifests.image is not None:
        expect(image == manifests.image, f"image is {shown(image)}, not {shown(manifests.image)}")
    manifests.notes.append(f"image {image}")


COMMON = [
    Check(
        "tls",
        "mutual TLS from mounted Secrets: nodes RAFTKV_TLS_DIR (raftkv-tls), clients RAFTKV_TLS_* (raftkv-client-tls), no RAFTKV_INSECURE",
        check_tls,
    ),
    Check("security", "restricted security context on every pod and container", check_security),
    Check("resources", "cpu and memory requests and a memory limit on every container", check_resources),
    Check(
        "isolation", "no service links (RAFTKV_* injection), no service account token", check_pod_isolation
    ),
    Check("server-label", "only the servers carry app.kubernetes.io/name=raftkv", check_server_label),
    Check("images", "one image (and pull policy) for every container", check_images),
]

DEPLOYMENT = [
    Check(
        "namespace", "everything in one namespace that enforces Pod Security 'restricted'", check_namespace
    ),
    Check(
        "peer-service",
        "headless Service raftkv-peer: clusterIP None, publishNotReadyAddresses, peer/client/http ports",
        check_peer_service,
    ),
    Check(
        "client-service", "ClusterIP Service raftkv on port 7101 selecting the servers", check_client_service
    ),
    Check(
        "statefulset",
        "StatefulSet raftkv: 3 replicas, Parallel pod management, governed by raftkv-peer",
        check_statefulset_shape,
    ),
    Check(
        "anti-affinity",
        "required pod anti-affinity on kubernetes.io/hostname over the StatefulSet's own pods",
        check_anti_affinity,
    ),
    Check(
        "probes",
        "startup /livez sized for recovery, liveness /livez, readiness /readyz over HTTPS on the ops port",
        check_probes,
    ),
    Check(
        "data-volume", "volumeClaimTemplate 'data' mounted read-write at RAFTKV_DATA_DIR", check_data_volume
    ),
    Check(
        "node-env",
        "id from the pod name; the 3 initial peers and every pod's advertised addresses by DNS name",
        check_node_environment,
    ),
    Check("grace", "terminationGracePeriodSeconds covers the leadership transfer", check_grace_period),
    Check("pdb", "PodDisruptionBudget maxUnavailable 1 over the servers", check_pdb),
    Check(
        "client-pod", "client Pod raftkv-client runs `raftkv idle` with the three endpoints", check_client_pod
    ),
    Check(
        "no-job",
        "no Job in the deployment (the smoke test runs after the rollout)",
        check_no_job_in_deployment,
    ),
] + COMMON

SMOKE = [
    Check(
        "smoke-job",
        "Job raftkv-smoke runs `raftkv smoke` once or twice with the three endpoints",
        check_smoke_job,
    ),
] + COMMON

SETS = {"deployment": DEPLOYMENT, "smoke": SMOKE}


def run_checks(checks: list[Check], manifests: Manifests, verbose: bool = True) -> dict[str, str]:
    """Runs every check; returns {ident: problem} for the failed ones."""
    failures: dict[str, str] = {}
    for check in checks:
        try:
            check.run(manifests)
        except Problem as problem:
            failures[check.ident] = str(problem)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            failures[check.ident] = f"malformed manifest: {type(error).__name__}: {error}"
        if verbose:
            if check.ident in failures:
                print(f"FAIL  {check.ident:<15} {check.title}\n      -> {failures[check.ident]}")
            else:
                print(f"ok    {check.ident:<15} {check.title}")
    return failures


def load(paths: Iterable[str]) -> list[dict[str, Any]]:
    documents = []
    for path in paths:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
        with stream:
            documents.extend(d for d in yaml.safe_load_all(stream) if d)
    return documents


# ---------------------------------------------------------------------------- self-test


def statefulset_of(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in documents if d.get("kind") == "StatefulSet")


def node_container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return statefulset_of(documents)["spec"]["template"]["spec"]["containers"][0]


def of_kind(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    return next(
        d for d in documents if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)
    )


def set_env(container: dict[str, Any], name: str, value: str) -> None:
    for variable in container["env"]:
        if variable["name"] == name:
            variable.clear()
            variable.update({"name": name, "value": value})
            return
    container["env"].append({"name": name, "value": value})


def remove_env(container: dict[str, Any], name: str) -> None:
    container["env"] = [variable for variable in container["env"] if variable["name"] != name]


def move_env_first(container: dict[str, Any], name: str) -> None:
    """Moves variable `name` to the front, before the variables its $(...) refer to."""
    variables = container["env"]
    moved = [variable for variable in variables if variable["name"] == name]
    container["env"] = moved + [variable for variable in variables if variable["name"] != name]


def anti_affinity(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return statefulset_of(documents)["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]


def make_preferred(documents: list[dict[str, Any]]) -> None:
    rules = anti_affinity(documents)
    terms = rules.pop("requiredDuringSchedulingIgnoredDuringExecution")
    rules["preferredDuringSchedulingIgnoredDuringExecution"] = [
        {"weight": 100, "podAffinityTerm": term} for term in terms
    ]


def remove_probe(name: str) -> Callable[[list[dict[str, Any]]], None]:
    return lambda documents: node_container(documents).pop(name)


# (check expected to fail, what the mutation does, the mutation). Each removes or weakens
# one property the design relies on.
def node_spec(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return statefulset_of(documents)["spec"]["template"]["spec"]


def client_container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return of_kind(documents, "Pod", CLIENT_POD)["spec"]["containers"][0]


DEPLOYMENT_MUTATIONS: list[tuple[str, str, Callable[[list[dict[str, Any]]], None]]] = [
    ("tls", "RAFTKV_INSECURE on the nodes", lambda d: set_env(node_container(d), "RAFTKV_INSECURE", "true")),
    ("tls", "RAFTKV_TLS_DIR removed", lambda d: remove_env(node_container(d), "RAFTKV_TLS_DIR")),
    (
        "tls",
        "RAFTKV_TLS_DIR not a mounted Secret",
        lambda d: set_env(node_container(d), "RAFTKV_TLS_DIR", "/var/lib/raftkv/tls"),
    ),
    (
        "tls",
        "one certificate for every node",
        lambda d: set_env(node_container(d), "RAFTKV_NODE_TLS_CERT", "/etc/raftkv/tls/node-1.crt"),
    ),
    (
        "tls",
        "node TLS volume an emptyDir",
        lambda d: node_spec(d)["volumes"].__setitem__(0, {"name": "tls", "emptyDir": {}}),
    ),
    (
        "tls",
        "node TLS Secret mounted with a subPath",
        lambda d: node_container(d)["volumeMounts"][1].update(subPath="node-1.crt"),
    ),
    (
        "tls",
        "node TLS Secret world-readable",
        lambda d: node_spec(d)["volumes"][0]["secret"].update(defaultMode=0o644),
    ),
    (
        "tls",
        "nodes mount the client Secret",
        lambda d: node_spec(d)["volumes"][0]["secret"].update(secretName=CLIENT_TLS_SECRET),
    ),
    ("tls", "client Pod without RAFTKV_TLS_KEY", lambda d: remove_env(client_container(d), "RAFTKV_TLS_KEY")),
    (
        "tls",
        "client Pod CA outside its Secret",
        lambda d: set_env(client_container(d), "RAFTKV_TLS_CA", "/tmp/ca.crt"),
    ),
    (
        "probes",
        "readiness probe over plain HTTP",
        lambda d: node_container(d)["readinessProbe"]["httpGet"].pop("scheme"),
    ),
    (
        "probes",
        "startup probe over plain HTTP",
        lambda d: node_container(d)["startupProbe"]["httpGet"].update(scheme="HTTP"),
    ),
    (
        "anti-affinity",
        "pod anti-affinity removed",
        lambda d: statefulset_of(d)["spec"]["template"]["spec"].pop("affinity"),
    ),
    ("anti-affinity", "anti-affinity only preferred", make_preferred),
    (
        "anti-affinity",
        "anti-affinity per zone",
        lambda d: anti_affinity(d)["requiredDuringSchedulingIgnoredDuringExecution"][0].update(
            topologyKey="topology.kubernetes.io/zone"
        ),
    ),
    (
        "anti-affinity",
        "anti-affinity selects other pods",
        lambda d: anti_affinity(d)["requiredDuringSchedulingIgnoredDuringExecution"][0][
            "labelSelector"
        ].update(matchLabels={"app": "other"}),
    ),
    (
        "peer-service",
        "publishNotReadyAddresses false",
        lambda d: of_kind(d, "Service", PEER_SERVICE)["spec"].update(publishNotReadyAddresses=False),
    ),
    (
        "peer-service",
        "publishNotReadyAddresses removed",
        lambda d: of_kind(d, "Service", PEER_SERVICE)["spec"].pop("publishNotReadyAddresses"),
    ),
    (
        "peer-service",
        "peer Service not headless",
        lambda d: of_kind(d, "Service", PEER_SERVICE)["spec"].pop("clusterIP"),
    ),
    (
        "peer-service",
        "peer Service loses its http port",
        lambda d: of_kind(d, "Service", PEER_SERVICE)["spec"]["ports"].pop(),
    ),
    ("client-service", "client Service removed", lambda d: d.remove(of_kind(d, "Service", CLIENT_SERVICE))),
    ("statefulset", "replicas 5", lambda d: statefulset_of(d)["spec"].update(replicas=5)),
    (
        "statefulset",
        "OrderedReady pod management",
        lambda d: statefulset_of(d)["spec"].update(podManagementPolicy="OrderedReady"),
    ),
    (
        "statefulset",
        "podManagementPolicy removed (OrderedReady by default)",
        lambda d: statefulset_of(d)["spec"].pop("podManagementPolicy"),
    ),
    ("probes", "startup probe removed", remove_probe("startupProbe")),
    ("probes", "liveness probe removed", remove_probe("livenessProbe")),
    ("probes", "readiness probe removed", remove_probe("readinessProbe")),
    (
        "probes",
        "liveness on /readyz",
        lambda d: node_container(d)["livenessProbe"]["httpGet"].update(path="/readyz"),
    ),
    (
        "probes",
        "readiness on /livez",
        lambda d: node_container(d)["readinessProbe"]["httpGet"].update(path="/livez"),
    ),
    (
        "probes",
        "readiness on the client port",
        lambda d: node_container(d)["readinessProbe"]["httpGet"].update(port="client"),
    ),
    (
        "probes",
        "startup budget 20 s",
        lambda d: node_container(d)["startupProbe"].update(periodSeconds=2, failureThreshold=10),
    ),
    (
        "data-volume",
        "volumeClaimTemplates removed",
        lambda d: statefulset_of(d)["spec"].pop("volumeClaimTemplates"),
    ),
    (
        "data-volume",
        "data mounted elsewhere",
        lambda d: node_container(d)["volumeMounts"][0].update(mountPath="/data"),
    ),
    (
        "data-volume",
        "data dir moved off the volume",
        lambda d: set_env(node_container(d), "RAFTKV_DATA_DIR", "/tmp/raftkv"),
    ),
    (
        "data-volume",
        "data claim shadowed by an emptyDir",
        lambda d: statefulset_of(d)["spec"]["template"]["spec"].update(
            volumes=[{"name": "data", "emptyDir": {}}]
        ),
    ),
    (
        "node-env",
        "a peer missing",
        lambda d: set_env(
            node_container(d),
            "RAFTKV_PEERS",
            "1=raftkv-0.raftkv-peer.raftkv.svc.cluster.local:7001,2=raftkv-1.raftkv-peer.raftkv.svc.cluster.local:7001",
        ),
    ),
    (
        "node-env",
        "advertise address without the pod name",
        lambda d: set_env(
            node_container(d), "RAFTKV_ADVERTISE_CLIENT", "raftkv.raftkv.svc.cluster.local:7101"
        ),
    ),
    (
        "node-env",
        "the scale-up pods listed as initial peers",
        lambda d: set_env(
            node_container(d),
            "RAFTKV_PEERS",
            ",".join(
                f"{ordinal + 1}=raftkv-{ordinal}.raftkv-peer.$(POD_NAMESPACE).svc.cluster.local:7001"
                for ordinal in range(SCALED_REPLICAS)
            ),
        ),
    ),
    (
        "node-env",
        "RAFTKV_ADVERTISE_PEER removed",
        lambda d: remove_env(node_container(d), "RAFTKV_ADVERTISE_PEER"),
    ),
    (
        "node-env",
        "advertise peer address without the pod name",
        lambda d: set_env(
            node_container(d),
            "RAFTKV_ADVERTISE_PEER",
            "raftkv-0.raftkv-peer.$(POD_NAMESPACE).svc.cluster.local:7001",
        ),
    ),
    (
        "node-env",
        "advertise peer address on the client port",
        lambda d: set_env(
            node_container(d),
            "RAFTKV_ADVERTISE_PEER",
            "$(RAFTKV_POD_NAME).raftkv-peer.$(POD_NAMESPACE).svc.cluster.local:7101",
        ),
    ),
    (
        "node-env",
        "advertise peer address before the pod name it expands",
        lambda d: move_env_first(node_container(d), "RAFTKV_ADVERTISE_PEER"),
    ),
    ("node-env", "fixed RAFTKV_ID", lambda d: set_env(node_container(d), "RAFTKV_ID", "1")),
    (
        "node-env",
        "pod name from a constant",
        lambda d: set_env(node_container(d), "RAFTKV_POD_NAME", "raftkv-0"),
    ),
    (
        "node-env",
        "listen on loopback",
        lambda d: set_env(node_container(d), "RAFTKV_LISTEN_PEER", "127.0.0.1:7001"),
    ),
    (
        "grace",
        "terminationGracePeriodSeconds 1",
        lambda d: statefulset_of(d)["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=1),
    ),
    (
        "grace",
        "grace too short for a slower tick",
        lambda d: set_env(node_container(d), "RAFTKV_TICK_MS", "1000"),
    ),
    (
        "pdb",
        "PDB maxUnavailable 2",
        lambda d: of_kind(d, "PodDisruptionBudget")["spec"].update(maxUnavailable=2),
    ),
    ("pdb", "PDB removed", lambda d: d.remove(of_kind(d, "PodDisruptionBudget"))),
    (
        "pdb",
        "PDB AlwaysAllow",
        lambda d: of_kind(d, "PodDisruptionBudget")["spec"].update(unhealthyPodEvictionPolicy="AlwaysAllow"),
    ),
    (
        "security",
        "runAsNonRoot removed",
        lambda d: statefulset_of(d)["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot"),
    ),
    (
        "security",
        "fsGroup removed",
        lambda d: statefulset_of(d)["spec"]["template"]["spec"]["securityContext"].pop("fsGroup"),
    ),
    (
        "security",
        "seccomp profile removed",
        lambda d: statefulset_of(d)["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile"),
    ),
    (
        "security",
        "writable root filesystem",
        lambda d: node_container(d)["securityContext"].update(readOnlyRootFilesystem=False),
    ),
    (
        "security",
        "privilege escalation allowed",
        lambda d: node_container(d)["securityContext"].pop("allowPrivilegeEscalation"),
    ),
    (
        "security",
        "capabilities not dropped",
        lambda d: node_container(d)["securityContext"].pop("capabilities"),
    ),
    (
        "security",
        "NET_ADMIN added",
        lambda d: node_container(d)["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
    ),
    (
        "security",
        "client Pod runs as root",
        lambda d: of_kind(d, "Pod", CLIENT_POD)["spec"]["containers"][0]["securityContext"].update(
            runAsUser=0
        ),
    ),
    (
        "namespace",
        "Pod Security enforcement removed",
        lambda d: of_kind(d, "Namespace")["metadata"]["labels"].pop("pod-security.kubernetes.io/enforce"),
    ),
    ("resources", "memory limit removed", lambda d: node_container(d)["resources"].pop("limits")),
    ("resources", "requests removed", lambda d: node_container(d)["resources"].pop("requests")),
    (
        "isolation",
        "service links enabled",
        lambda d: statefulset_of(d)["spec"]["template"]["spec"].pop("enableServiceLinks"),
    ),
    (
        "server-label",
        "client Pod labelled as a server",
        lambda d: of_kind(d, "Pod", CLIENT_POD)["metadata"]["labels"].update(
            {SERVER_LABEL[0]: SERVER_LABEL[1]}
        ),
    ),
    (
        "client-pod",
        "client Pod runs something else",
        lambda d: of_kind(d, "Pod", CLIENT_POD)["spec"]["containers"][0].update(command=["raftkv", "status"]),
    ),
    (
        "client-pod",
        "client Pod misses an endpoint",
        lambda d: set_env(
            of_kind(d, "Pod", CLIENT_POD)["spec"]["containers"][0], "RAFTKV_ENDPOINTS", "raftkv:7101"
        ),
    ),
    (
        "images",
        "client Pod on another image",
        lambda d: of_kind(d, "Pod", CLIENT_POD)["spec"]["containers"][0].update(image="busybox"),
    ),
    (
        "no-job",
        "a Job in the deployment",
        lambda d: d.append(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": SMOKE_JOB, "namespace": "raftkv"},
                "spec": {},
            }
        ),
    ),
]

SMOKE_MUTATIONS: list[tuple[str, str, Callable[[list[dict[str, Any]]], None]]] = [
    (
        "tls",
        "Job without RAFTKV_TLS_CERT",
        lambda d: remove_env(of_kind(d, "Job")["spec"]["template"]["spec"]["containers"][0], "RAFTKV_TLS_CERT"),
    ),
    (
        "tls",
        "Job with RAFTKV_INSECURE",
        lambda d: set_env(of_kind(d, "Job")["spec"]["template"]["spec"]["containers"][0], "RAFTKV_INSECURE", "true"),
    ),
    (
        "tls",
        "Job's Secret mounted read-write",
        lambda d: of_kind(d, "Job")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0].pop("readOnly"),
    ),
    ("smoke-job", "backoffLimit 10", lambda d: of_kind(d, "Job")["spec"].update(backoffLimit=10)),
    (
        "smoke-job",
        "backoffLimit removed (6 by default)",
        lambda d: of_kind(d, "Job")["spec"].pop("backoffLimit"),
    ),
    (
        "smoke-job",
        "Job runs something else",
        lambda d: of_kind(d, "Job")["spec"]["template"]["spec"]["containers"][0].update(
            command=["raftkv", "idle"]
        ),
    ),
    (
        "smoke-job",
        "Job restarts in place",
        lambda d: of_kind(d, "Job")["spec"]["template"]["spec"].update(restartPolicy="OnFailure"),
    ),
    (
        "security",
        "Job without seccomp",
        lambda d: of_kind(d, "Job")["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile"),
    ),
    (
        "server-label",
        "Job pods labelled as servers",
        lambda d: of_kind(d, "Job")["spec"]["template"]["metadata"]["labels"].update(
            {SERVER_LABEL[0]: SERVER_LABEL[1]}
        ),
    ),
]


def self_test(deployment_path: str, smoke_path: str) -> int:
    problems = []
    for label, path, checks, mutations in (
        ("deployment", deployment_path, DEPLOYMENT, DEPLOYMENT_MUTATIONS),
        ("smoke", smoke_path, SMOKE, SMOKE_MUTATIONS),
    ):
        original = load([path])
        failures = run_checks(checks, Manifests(original), verbose=False)
        if failures:
            problems.append(f"the unmodified {label} rendering fails: {failures}")
            continue
        for ident, what, mutate in mutations:
            documents = copy.deepcopy(original)
            mutate(documents)
            failures = run_checks(checks, Manifests(documents), verbose=False)
            if ident in failures:
                print(f"caught   {what:<48} by {ident}: {failures[ident]}")
            else:
                problems.append(
                    f"{label}: mutation {shown(what)} not caught by check {shown(ident)} (failures: {failures or 'none'})"
                )
                print(f"MISSED   {what:<48} expected check {ident} to fail")
    total = len(DEPLOYMENT_MUTATIONS) + len(SMOKE_MUTATIONS)
    if problems:
        print("self-test FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(f"self-test ok: {total} mutations, each caught by its check")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=sorted(SETS), help="which rendering the files hold")
    parser.add_argument("--image", help="every container must use this image")
    parser.add_argument("--pull-policy", help="every container must use this imagePullPolicy")
    parser.add_argument(
        "--self-test",
        nargs=2,
        metavar=("DEPLOYMENT", "SMOKE"),
        help="mutate these renderings and assert each mutation fails",
    )
    parser.add_argument("files", nargs="*", help="rendered manifests ('-' for stdin)")
    args = parser.parse_args()
    if args.self_test:
        return self_test(*args.self_test)
    if not args.set or not args.files:
        parser.error("give --set and the rendered manifest files (or --self-test)")
    manifests = Manifests(load(args.files), image=args.image, pull_policy=args.pull_policy)
    failures = run_checks(SETS[args.set], manifests)
    for note in manifests.notes:
        print(f"      note: {note}")
    if failures:
        print(f"{len(failures)} of {len(SETS[args.set])} checks FAILED")
        return 1
    print(f"all {len(SETS[args.set])} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
