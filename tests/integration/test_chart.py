"""The Helm chart (charts/igor) against the session's real control plane.

- `helm lint` is clean, with the default values and with charts/igor/ci/custom-values.yaml;
- values that break values.schema.json are refused, naming the field;
- `helm template` output is accepted by the real API server (`kubectl apply --dry-run=server`,
  strict field validation), with default, non-default and bring-your-own values;
- `helm install` creates every object of the release, `helm upgrade` keeps the generated node
  token, `helm uninstall` removes everything but the CRDs;
- the chart's RBAC is enough, and its command lines are right: the real node daemon and operator
  run with the chart's arguments as the chart's ServiceAccounts, register, elect a leader, serve
  the webhooks, run an agent, migrate it and evacuate a cordoned node.

There is no kubelet or scheduler here: Deployments and StatefulSets are stored but no pod ever
starts, which is why the components run as local processes with ServiceAccount tokens.
"""

from __future__ import annotations

import base64
import contextlib
import filecmp
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from igor.controlplane import find
from tests import agents

from .helpers import eventually, make_namespace
from .processes import ChildProcess, free_port

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "igor"
CUSTOM_VALUES = CHART / "ci" / "custom-values.yaml"
GROUP, VERSION = "igor.dev", "v1alpha1"
# The namespaces charts/igor/ci/custom-values.yaml restricts igor to.
CUSTOM_AGENT_NAMESPACES = ("igor-agents-a", "igor-agents-b")


# --------------------------------------------------------------------------- tools


@pytest.fixture(scope="module")
def tools(kubeconfig, tmp_path_factory) -> Tools:
    return Tools(kubeconfig, tmp_path_factory.mktemp("helm-home"))


class Tools:
    """helm and kubectl from hack/controlplane/bin, pointed at the session's control plane."""

    def __init__(self, kubeconfig: str, home: Path):
        self.kubeconfig = kubeconfig
        self.helm_bin = str(find("helm"))
        self.kubectl_bin = str(find("kubectl"))
        # Keep helm's cache and config out of the user's home.
        self.env = dict(
            os.environ,
            HELM_CACHE_HOME=str(home / "cache"),
            HELM_CONFIG_HOME=str(home / "config"),
            HELM_DATA_HOME=str(home / "data"),
        )
        self.env.pop("KUBECONFIG", None)

    def _run(self, argv: list[str], stdin: str | None, check: bool) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=self.env, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def helm(self, *args: str, stdin: str | None = None, check: bool = True):
        return self._run([self.helm_bin, "--kubeconfig", self.kubeconfig, *args], stdin, check)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True):
        return self._run([self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args], stdin, check)

    def template(self, release: str, namespace: str, *values: str) -> str:
        return self.helm("template", release, str(CHART), "--namespace", namespace, *values).stdout


def docs(manifest: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(manifest) if d]


def kinds(manifest: str) -> list[tuple[str, str, str | None]]:
    return sorted(
        (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in docs(manifest)
    )


def find_doc(manifest: str, kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs(manifest) if d["kind"] == kind]
    return doc


def ensure_namespace(k8s, name: str) -> None:
    try:
        client.CoreV1Api(k8s).create_namespace(client.V1Namespace(metadata={"name": name}))
    except ApiException as exc:
        if exc.status != 409:
            raise


# A ServiceMonitor CRD for the dry-run of serviceMonitor.enabled: true (the control plane has no
# Prometheus Operator). Its schema lists exactly the fields the chart uses, with the names and
# types of monitoring.coreos.com/v1, so strict field validation still catches a misspelt field.
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "kind": "ServiceMonitor",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "selector": {
                                        "type": "object",
                                        "properties": {
                                            "matchLabels": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            }
                                        },
                                    },
                                    "endpoints": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "port": {"type": "string"},
                                                "path": {"type": "string"},
                                                "interval": {"type": "string"},
                                                "scrapeTimeout": {"type": "string"},
                                                "authorization": {
                                                    "type": "object",
                                                    "properties": {
                                                        "type": {"type": "string"},
                                                        "credentials": {
                                                            "type": "object",
                                                            "properties": {
                                                                "name": {"type": "string"},
                                                                "key": {"type": "string"},
                                                            },
                                                        },
                                                    },
                                                },
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def service_monitor_crd(k8s_module):
    from igor import kube

    ext = client.ApiextensionsV1Api(k8s_module)
    try:
        ext.create_custom_resource_definition(SERVICE_MONITOR_CRD)
    except ApiException as exc:
        if exc.status != 409:
            raise
    kube.wait_crd_established(ext, SERVICE_MONITOR_CRD["metadata"]["name"])
    yield
    with contextlib.suppress(ApiException):
        ext.delete_custom_resource_definition(SERVICE_MONITOR_CRD["metadata"]["name"])


@pytest.fixture(scope="module")
def k8s_module(control_plane):
    from igor import kube

    with kube.api_client(control_plane.kubeconfig) as api:
        yield api


# --------------------------------------------------------------------------- CRDs


def test_chart_crds_are_byte_identical_copies_of_crds():
    source = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    copies = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert copies == source, "run hack/sync-chart-crds.sh"
    for name in source:
        assert (CHART / "crds" / name).read_bytes() == (REPO / "crds" / name).read_bytes(), (
            f"charts/igor/crds/{name} differs from crds/{name}: run hack/sync-chart-crds.sh"
        )


def test_sync_script_copies_crds_and_drops_stale_ones(tmp_path):
    # A scratch tree shaped like the repository, with a stale and an outdated copy.
    (tmp_path / "hack").mkdir()
    shutil.copy2(REPO / "hack" / "sync-chart-crds.sh", tmp_path / "hack")
    shutil.copytree(REPO / "crds", tmp_path / "crds")
    chart_crds = tmp_path / "charts" / "igor" / "crds"
    chart_crds.mkdir(parents=True)
    (chart_crds / "igoragents.yaml").write_text("outdated\n")
    (chart_crds / "removed-kind.yaml").write_text("stale\n")
    out = subprocess.run(
        ["bash", str(tmp_path / "hack" / "sync-chart-crds.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "synced 3 CRDs" in out
    cmp = filecmp.dircmp(tmp_path / "crds", chart_crds)
    assert not cmp.left_only and not cmp.right_only
    for name in cmp.common_files:
        assert (chart_crds / name).read_bytes() == (tmp_path / "crds" / name).read_bytes()


# --------------------------------------------------------------------------- lint and schema


@pytest.mark.parametrize("values", ["default", "custom"])
@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_helm_lint_is_clean(tools, values, strict):
    args = ["lint", str(CHART)]
    if values == "custom":
        args += ["--values", str(CUSTOM_VALUES)]
    if strict:
        args.append("--strict")
    out = tools.helm(*args).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


# (--set, the path helm names, what it says about it)
BAD_VALUES = [
    ("operator.replicas=two", "/operator/replicas", "want integer"),
    ("operator.resoures.requests.cpu=1", "/operator", "'resoures' not allowed"),
    ("nodes.replicas=3", "", "'nodes' not allowed"),
    ("node.capabilities.teleport=1", "/node/capabilities", "'teleport' not allowed"),
    ("node.auth.mode=password", "/node/auth/mode", "must be one of"),
    ("node.store=file:/data", "/node/store", "value must be"),
    ("node.replicas=0", "/node/replicas", "minimum"),
    (
        "node.podDisruptionBudget.maxUnavailable=0",
        "/node/podDisruptionBudget/maxUnavailable",
        "minimum",
    ),
    ("operator.image.digest=sha256:xyz", "/operator/image/digest", "does not match"),
    ("agentNamespaces={Bad_NS}", "/agentNamespaces/0", "does not match"),
    ("node.igorNodeLabels.tier=gold plated", "/node/igorNodeLabels/tier", "does not match"),
    ("nodeToken.existingSecret=mine,nodeToken.value=also", "/nodeToken/value", "maxLength"),
    ("serviceMonitor.interval=often", "/serviceMonitor/interval", "does not match"),
]


@pytest.mark.parametrize(
    ("setting", "field", "why"), [pytest.param(*case, id=case[0]) for case in BAD_VALUES]
)
def test_schema_refuses_bad_values_naming_the_field(tools, setting, field, why):
    proc = tools.helm("template", "t", str(CHART), "--set", setting, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert f"at '{field}'" in proc.stderr, proc.stderr
    assert why in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("version", "ok"), [("1.29.9", False), ("1.30.0", True), ("v1.31.2-eks-2d98532", True)]
)
def test_chart_requires_kubernetes_1_30(tools, version, ok):
    proc = tools.helm("template", "t", str(CHART), "--kube-version", version, check=False)
    assert (proc.returncode == 0) == ok, proc.stderr
    if not ok:
        assert "chart requires kubeVersion: >=1.30.0-0" in proc.stderr


# --------------------------------------------------------------------------- server-side dry-run

BYO = [
    "--set",
    "rbac.create=false,operator.serviceAccount.create=false,operator.serviceAccount.name=ops,"
    "node.serviceAccount.create=false,node.serviceAccount.name=nodes,"
    "nodeToken.existingSecret=vault-node-token,operator.replicas=1",
]


@pytest.mark.parametrize("values", ["default", "custom", "bring-your-own"])
def test_template_is_accepted_by_the_api_server(tools, k8s, service_monitor_crd, values):
    ns = make_namespace(k8s, "chart-dry")
    extra: list[str] = []
    if values == "custom":
        extra = ["--values", str(CUSTOM_VALUES)]
        for agent_ns in CUSTOM_AGENT_NAMESPACES:
            ensure_namespace(k8s, agent_ns)
    elif values == "bring-your-own":
        extra = BYO
    manifest = tools.template("igor", ns, *extra)
    objects = kinds(manifest)
    out = tools.kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifest).stdout
    accepted = [line for line in out.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(objects), out

    rendered = {kind for kind, _, _ in objects}
    always = {"Deployment", "StatefulSet", "Service", "PodDisruptionBudget"}
    assert always <= rendered
    if values == "custom":
        assert {"ServiceMonitor", "NetworkPolicy", "Role", "Secret"} <= rendered
        role_namespaces = {n for kind, _, n in objects if kind == "Role"}
        assert role_namespaces == {ns, *CUSTOM_AGENT_NAMESPACES}
    if values == "bring-your-own":
        assert not rendered & {"Secret", "ServiceAccount", "ClusterRole", "Role"}
        # One operator replica: no operator PodDisruptionBudget (it would block every drain).
        assert [n for kind, n, _ in objects if kind == "PodDisruptionBudget"] == ["igor-node"]
        pod = find_doc(manifest, "StatefulSet")["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "nodes"
        assert pod["volumes"][1]["secret"]["secretName"] == "vault-node-token"
    # Nothing was stored.
    assert tools.kubectl("get", "deploy,sts,secret,sa,svc", "-n", ns, "-o", "name").stdout == ""


def test_rendered_pods_are_locked_down(tools):
    manifest = tools.template("igor", "igor-system")
    for kind in ("Deployment", "StatefulSet"):
        pod = find_doc(manifest, kind)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsUser"] == 65532
        assert container["resources"]["requests"]
        assert container["livenessProbe"] and container["readinessProbe"]
        if kind == "Deployment":
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
            assert "--health-addr=0.0.0.0" in container["args"]
            assert f"--health-port={ports['health']}" in container["args"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts
        for doc in docs(manifest):
            labels = doc["metadata"]["labels"]
            for key in (
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/version",
                "app.kubernetes.io/component",
                "app.kubernetes.io/part-of",
                "app.kubernetes.io/managed-by",
                "helm.sh/chart",
            ):
                assert key in labels, (doc["kind"], doc["metadata"]["name"], key)
    sts = find_doc(manifest, "StatefulSet")
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--advertise=http://$(POD_NAME).igor-node.igor-system.svc.cluster.local:8080" in args
    env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in env
    assert sts["spec"]["serviceName"] == "igor-node"
    assert find_doc(manifest, "Deployment")["spec"]["replicas"] == 2


# ------------------------------------------------------------------ docs/operations.md, runnable

OPERATIONS = REPO / "docs" / "operations.md"
# Blocks of docs/operations.md that no test runs, and why (the doc says so too).
NOT_RUN = {"delete-crds": "deleting the CRDs would break every other test of the session"}


def operations_blocks() -> dict[str, str]:
    """The ```sh blocks of docs/operations.md, by the name in the comment above each."""
    text = OPERATIONS.read_text()
    blocks = dict(re.findall(r"<!-- block: ([\w-]+)[^>]*-->\n```sh\n(.*?)```", text, re.S))
    assert len(blocks) == text.count("```sh"), "every sh block needs a <!-- block: name -->"
    return blocks


class Shell:
    """Runs the commands of docs/operations.md and NOTES.txt as a user would: bash with helm,
    kubectl and igor on PATH, in a scratch folder, with the release namespace in place of
    `igor-system` and kubectl's current namespace set to ``agents_ns`` (the docs' default)."""

    def __init__(self, tools: Tools, workdir: Path, release_ns: str, agents_ns: str = "default"):
        self.workdir = workdir
        self.release_ns = release_ns
        config = yaml.safe_load(Path(tools.kubeconfig).read_text())
        for context in config["contexts"]:
            context["context"]["namespace"] = agents_ns
        user_kubeconfig = workdir / "user.kubeconfig"
        user_kubeconfig.write_text(yaml.safe_dump(config))
        path = [str(Path(tools.helm_bin).parent), str(Path(sys.executable).parent)]
        self.env = dict(
            tools.env,
            KUBECONFIG=str(user_kubeconfig),
            PATH=os.pathsep.join([*path, os.environ.get("PATH", "")]),
        )

    def run(
        self, script: str, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess:
        script = script.replace("igor-system", self.release_ns).replace("charts/igor", str(CHART))
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=cwd or self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{script}\nexited {proc.returncode}\nstdout:\n{proc.stdout}\n"
                f"stderr:\n{proc.stderr}"
            )
        return proc

    def doc(self, *names: str, check: bool = True) -> subprocess.CompletedProcess:
        """Blocks of docs/operations.md, run together (later ones use earlier ones' variables)."""
        blocks = operations_blocks()
        return self.run("".join(blocks[name] for name in names), check)


def test_every_command_of_operations_md_is_run_by_these_tests():
    calls = re.findall(r"\.doc\(([^)]*)\)", Path(__file__).read_text())
    run_here = {name for call in calls for name in re.findall(r'"([\w-]+)"', call)}
    blocks = set(operations_blocks())
    assert run_here - blocks == set(), "tests run blocks the doc no longer has"
    assert blocks - run_here == set(NOT_RUN), "blocks of docs/operations.md no test runs"


def test_the_values_example_of_operations_md_renders(tools, tmp_path):
    (example,) = re.findall(r"```yaml\n(.*?)```", OPERATIONS.read_text(), re.S)
    (tmp_path / "my-values.yaml").write_text(example)
    manifest = tools.template("igor", "igor-system", "-f", str(tmp_path / "my-values.yaml"))
    images = {
        find_doc(manifest, kind)["spec"]["template"]["spec"]["containers"][0]["image"]
        for kind in ("Deployment", "StatefulSet")
    }
    assert images == {
        "registry.example.com/igor/igor-operator:0.1.0",
        "registry.example.com/igor/igor-node:0.1.0",
    }


# ------------------------------------------------------------------ install, upgrade, uninstall


def crd_versions(k8s) -> dict[str, str]:
    ext = client.ApiextensionsV1Api(k8s)
    return {
        plural: ext.read_custom_resource_definition(f"{plural}.{GROUP}").metadata.resource_version
        for plural in ("igoragents", "igornodes", "migrationrequests")
    }


def crd_generations(k8s) -> dict[str, int]:
    ext = client.ApiextensionsV1Api(k8s)
    return {
        plural: ext.read_custom_resource_definition(f"{plural}.{GROUP}").metadata.generation
        for plural in ("igoragents", "igornodes", "migrationrequests")
    }


def live_objects(tools: Tools, manifest: str) -> list[tuple[str, str, str | None]]:
    """Every object of the manifest that exists in the cluster (kubectl reads each one)."""
    out = tools.kubectl("get", "-f", "-", "-o", "json", "--ignore-not-found", stdin=manifest).stdout
    if not out.strip():
        return []
    found = json.loads(out)
    items = found.get("items", [found]) if found.get("kind") == "List" else [found]
    return sorted((i["kind"], i["metadata"]["name"], i["metadata"].get("namespace")) for i in items)


def node_token(k8s, ns: str) -> bytes:
    data = client.CoreV1Api(k8s).read_namespaced_secret("igor-node-token", ns).data
    return base64.b64decode(data["token"])


def test_install_upgrade_uninstall(tools, k8s, tmp_path):
    """Release `igor`, as in docs/operations.md, in a namespace of its own."""
    ns = f"chart-{uuid.uuid4().hex[:8]}"
    sh = Shell(tools, tmp_path, ns)
    (tmp_path / "my-values.yaml").write_text(yaml.safe_dump({"node": {"price": 1500}}))
    crds_before = crd_versions(k8s)
    try:
        # The CRDs are installed already (by the session fixture, as a cluster has them after an
        # earlier install): Helm skips CRDs that exist, so no --skip-crds is needed.
        install = sh.doc("install").stdout
        assert f"igor 0.1.0 is installed in namespace {ns}" in install
        assert "kubectl get igor" in install
        manifest = tools.helm("get", "manifest", "igor", "--namespace", ns).stdout
        expected = kinds(manifest)
        assert {k for k, _, _ in expected} == {
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "ServiceAccount",
            "StatefulSet",
        }
        assert len(expected) == 17
        assert live_objects(tools, manifest) == expected
        assert crd_versions(k8s) == crds_before, "helm install modified the existing CRDs"
        # No kubelet, no scheduler, no workload controllers: no pod runs.
        pods = client.CoreV1Api(k8s).list_namespaced_pod(ns).items
        assert all(p.status.phase in (None, "Pending") for p in pods)
        apps = client.AppsV1Api(k8s)
        args = apps.read_namespaced_stateful_set("igor-node", ns).spec.template.spec.containers[0]
        assert "--price=1500" in args.args
        token = node_token(k8s, ns)
        assert len(token) == 48 and token.isalnum()

        # Upgrade: the CRDs (same files here: the specs, hence generations, stay as they are;
        # only kubectl's field ownership is recorded), then the release. The token is kept.
        generations = crd_generations(k8s)
        out = sh.doc("upgrade").stdout
        assert out.count("serverside-applied") == 3
        assert crd_generations(k8s) == generations
        crds_before = crd_versions(k8s)
        assert node_token(k8s, ns) == token
        history = json.loads(tools.helm("history", "igor", "-n", ns, "-o", "json").stdout)
        assert [h["status"] for h in history] == ["superseded", "deployed"]
        args = apps.read_namespaced_stateful_set("igor-node", ns).spec.template.spec.containers[0]
        assert "--price=1500" in args.args, "--reuse-values kept my-values.yaml"

        # Token rotation: a new token, and both workloads' pod templates restarted.
        sh.doc("rotate-token")
        assert node_token(k8s, ns) != token
        for workload in (
            apps.read_namespaced_stateful_set("igor-node", ns),
            apps.read_namespaced_deployment("igor-operator", ns),
        ):
            annotations = workload.spec.template.metadata.annotations or {}
            assert "kubectl.kubernetes.io/restartedAt" in annotations

        sh.doc("uninstall")
        eventually(lambda: live_objects(tools, manifest) == [], 30, what="uninstalled objects")
        assert crd_versions(k8s) == crds_before, "helm uninstall must leave the CRDs alone"
    finally:
        tools.helm("uninstall", "igor", "--namespace", ns, check=False)
        with contextlib.suppress(ApiException):
            client.CoreV1Api(k8s).delete_namespace(ns)


# ------------------------------------------------------------------ the chart's RBAC, live


def container_args(manifest: str, kind: str) -> list[str]:
    (container,) = find_doc(manifest, kind)["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


def localize(args: list[str], env: dict[str, str], flags: dict[str, str | None]) -> list[str]:
    """The chart's arguments for a local process: $(VAR) expanded as the kubelet does, the
    flags in ``flags`` given a local value (None: dropped)."""
    out = []
    for arg in args:
        for var, value in env.items():
            arg = arg.replace(f"$({var})", value)
        flag = arg.split("=", 1)[0]
        if flag in flags:
            if flags[flag] is not None:
                out.append(f"{flag}={flags[flag]}")
            continue
        out.append(arg)
    return out


def service_account_kubeconfig(k8s, admin: str, ns: str, sa: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount with a TokenRequest token, as the
    chart's pods do with their projected token."""
    request = client.CoreV1Api(k8s).create_namespaced_service_account_token(
        sa, ns, {"spec": {"expirationSeconds": 3600}}
    )
    config = yaml.safe_load(Path(admin).read_text())
    config["users"] = [{"name": sa, "user": {"token": request.status.token}}]
    for context in config["contexts"]:
        context["context"]["user"] = sa
    path.write_text(yaml.safe_dump(config))
    return path


def notes_block(notes: str, header: str) -> str:
    """The indented commands under ``header`` in NOTES.txt, dedented, minus `-w` watches."""
    lines = notes.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header)) + 1
    block: list[str] = []
    for line in lines[start:]:
        if line and not line.startswith("  "):
            break
        if not line.endswith(" -w"):
            block.append(line[2:])
    return "\n".join(block).strip() + "\n"


def test_chart_rbac_runs_the_real_node_daemons_and_operator(tools, k8s, kubeconfig, tmp_path):
    """Install the chart, then run three node daemons and the operator as its pods would: with
    the chart's command lines, as the chart's ServiceAccounts, with the chart's token. Then do
    what NOTES.txt and docs/operations.md say: apply the example agent, migrate it, look at an
    unschedulable agent, read the metrics, cordon a node and shrink the pool. Every API call on
    that path must be allowed by the chart's RBAC."""
    ns = make_namespace(k8s, "chart-live")
    agents_ns = make_namespace(k8s, "chart-agents")
    sh = Shell(tools, tmp_path, ns, agents_ns)
    token = uuid.uuid4().hex
    (tmp_path / "my-values.yaml").write_text(
        yaml.safe_dump(
            {
                # Namespaced mode keeps this operator away from other tests' agents.
                "agentNamespaces": [agents_ns],
                "nodeToken": {"value": token},
                "node": {"leaseDurationSeconds": 10},
            }
        )
    )
    token_file = tmp_path / "token"
    token_file.write_text(token)
    custom = client.CustomObjectsApi(k8s)
    coordination = client.CoordinationV1Api(k8s)
    procs: dict[str, ChildProcess] = {}
    try:
        sh.doc("install")
        manifest = tools.helm("get", "manifest", "igor", "--namespace", ns).stdout
        notes = tools.helm("get", "notes", "igor", "--namespace", ns).stdout

        # The node pool: igor-node-0..2, as the StatefulSet's pods are named.
        node_kc = service_account_kubeconfig(k8s, kubeconfig, ns, "igor-node", tmp_path / "n.kc")
        for i in range(3):
            name = f"igor-node-{i}"
            argv = localize(
                container_args(manifest, "StatefulSet"),
                {"POD_NAME": name},
                {
                    "--listen": "127.0.0.1:0",
                    "--token-file": str(token_file),
                    # No cluster DNS here: the node advertises its listen address instead.
                    "--advertise": None,
                },
            )
            argv = [sys.executable, "-m", "igor_node", *argv, f"--kubeconfig={node_kc}"]
            procs[name] = ChildProcess(name, argv, tmp_path / f"{name}.log")
            procs[name].spawn()
            procs[name].wait_for(r"listening on http://")

        def ready_nodes() -> list[str]:
            found = custom.list_cluster_custom_object(
                GROUP, VERSION, "igornodes", label_selector="igor.dev/pool=igor-node"
            )["items"]
            return sorted(
                n["metadata"]["name"]
                for n in found
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (n.get("status") or {}).get("conditions", [])
                )
            )

        pool = ["igor-node-0", "igor-node-1", "igor-node-2"]
        eventually(lambda: ready_nodes() == pool, 30, what="three IgorNodes Ready")
        leases = {le.metadata.name for le in coordination.list_namespaced_lease(ns).items}
        assert leases >= {f"igor-node-{n}" for n in pool}

        # The operator, leader-elected and serving the admission webhooks, as its pod would.
        op_kc = service_account_kubeconfig(k8s, kubeconfig, ns, "igor-operator", tmp_path / "o.kc")
        health_port = free_port()
        argv = localize(
            container_args(manifest, "Deployment"),
            {"POD_NAME": "igor-operator-0", "POD_IP": "127.0.0.1"},
            {
                "--metrics-addr": "127.0.0.1",
                "--metrics-port": str(free_port()),
                "--health-addr": "127.0.0.1",
                "--health-port": str(health_port),
                "--webhook-addr": "127.0.0.1",
                "--webhook-port": str(free_port()),
                "--node-token-file": str(token_file),
            },
        )
        argv = [sys.executable, "-m", "igor_operator", *argv, f"--kubeconfig={op_kc}"]
        procs["operator"] = ChildProcess("operator", argv, tmp_path / "operator.log")
        procs["operator"].spawn()
        procs["operator"].wait_for("igor operator ready")
        leader = coordination.read_namespaced_lease("igor-operator", ns)
        assert leader.spec.holder_identity == "igor-operator-0"
        # The kubelet's probes, as the chart declares them.
        (op_container,) = find_doc(manifest, "Deployment")["spec"]["template"]["spec"]["containers"]
        for probe in ("livenessProbe", "readinessProbe"):
            path = op_container[probe]["httpGet"]["path"]
            url = f"http://127.0.0.1:{health_port}{path}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                assert resp.status == 200, (probe, path)
        admission = client.AdmissionregistrationV1Api(k8s)
        webhook_config = f"igor.{ns}.igor.dev"

        def webhooks() -> list[str]:
            try:
                config = admission.read_validating_webhook_configuration(webhook_config)
            except ApiException:
                return []
            return [w.name for w in config.webhooks or []]

        eventually(lambda: len(webhooks()) == 2, 30, what="the operator's webhooks")

        # NOTES.txt, as printed by the install.
        out = sh.run(notes_block(notes, "Watch the nodes register")).stdout
        assert "igor-node-0" in out
        agents.path("counter")  # built by `make agents`, as NOTES.txt asks
        # From a clone of the repository, as NOTES.txt says (it names agents/build/...).
        out = sh.run(notes_block(notes, "Run an example agent"), cwd=REPO).stdout
        assert "igoragent.igor.dev/counter created" in out

        def counter(tick: int = 2) -> dict[str, Any] | None:
            status = (
                custom.get_namespaced_custom_object(
                    GROUP, VERSION, agents_ns, "igoragents", "counter"
                ).get("status")
                or {}
            )
            ok = status.get("phase") == "Running" and status.get("tick", 0) >= tick
            return status if ok else None

        def finished(name: str) -> dict[str, Any] | None:
            mr = custom.get_namespaced_custom_object(
                GROUP, VERSION, agents_ns, "migrationrequests", name
            )
            status = mr.get("status") or {}
            return status if status.get("phase") in ("Succeeded", "Failed") else None

        first = eventually(counter, 60, what="counter Running")["node"]
        assert first in pool
        out = sh.run(notes_block(notes, "Move it to another node"), cwd=REPO).stdout
        assert "migrationrequest.igor.dev/counter-move-1 created" in out
        result = eventually(lambda: finished("counter-move-1"), 90, what="counter-move-1")
        assert result["phase"] == "Succeeded", result
        second = eventually(counter, 60, what="counter Running after the move")["node"]
        assert second != first
        replay = json.loads(sh.doc("migration-replay").stdout)
        assert replay["verdict"] == "Verified"

        # Metrics and the fencing checks of docs/operations.md, against igor-node-0.
        out = sh.doc("node-metrics").stdout
        assert "igor_node_agents_running" in out and "igor_node_ticks_total" in out
        out = sh.doc("node-metrics", "fenced").stdout
        assert "igor-node-igor-node-0" in out and "ok" in out
        assert "igor_node_fencing_events_total" in out

        # An agent no node fits (it will pay at most 500; the pool charges 1000).
        pricey = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "IgorAgent",
            "metadata": {"name": "pricey"},
            "spec": {
                "module": {
                    "configMap": {"name": "counter-wasm", "key": "agent.wasm"},
                    "digest": "sha256:" + hashlib.sha256(agents.wasm("counter")).hexdigest(),
                },
                "manifest": {"capabilities": {c: {"version": 1} for c in ("clock", "rand", "log")}},
                "budget": {"limit": 10**9},
                "placement": {"maxPrice": 500},
            },
        }
        tools.kubectl("apply", "-n", agents_ns, "-f", "-", stdin=json.dumps(pricey))

        def unschedulable():
            status = (
                custom.get_namespaced_custom_object(
                    GROUP, VERSION, agents_ns, "igoragents", "pricey"
                ).get("status")
                or {}
            )
            for c in status.get("conditions") or []:
                if c["type"] == "Scheduled" and c["status"] == "False":
                    return status.get("phase") == "Pending" and c["reason"] == "Unschedulable"
            return False

        eventually(unschedulable, 30, what="pricey Pending, Scheduled=False")
        out = sh.doc("pending").stdout
        assert "3 over max price" in out, out
        assert "FailedScheduling" in out, out

        # Shrinking the pool (docs/operations.md): first bring the agent to igor-node-2...
        to_last = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MigrationRequest",
            "metadata": {"name": "counter-move-2"},
            "spec": {"agent": "counter", "targetNode": "igor-node-2"},
        }
        if second != "igor-node-2":
            tools.kubectl("apply", "-n", agents_ns, "-f", "-", stdin=json.dumps(to_last))
            result = eventually(lambda: finished("counter-move-2"), 90, what="counter-move-2")
            assert result["phase"] == "Succeeded", result
            eventually(lambda: (counter() or {}).get("node") == "igor-node-2", 60)
        # ... then cordon it: the operator evacuates it through a migration of its own.
        sh.doc("cordon")
        eventually(
            lambda: (counter() or {}).get("node") not in (None, "igor-node-2"),
            90,
            what="counter evacuated from the cordoned igor-node-2",
        )
        sh.doc("scale-down")
        # What the StatefulSet controller would do: stop the pod with the highest ordinal. It
        # deletes its Lease on the way out, while its RBAC still names it.
        assert procs["igor-node-2"].terminate() == 0
        leases = {le.metadata.name for le in coordination.list_namespaced_lease(ns).items}
        assert "igor-node-igor-node-2" not in leases
        sh.doc("shrink")
        eventually(lambda: ready_nodes() == pool[:2], 30, what="igor-node-2 gone")
        node_role = client.RbacAuthorizationV1Api(k8s).read_namespaced_role("igor-node", ns)
        assert [r.resource_names for r in node_role.rules if r.resource_names] == [
            ["igor-node-igor-node-0", "igor-node-igor-node-1"]
        ]
        assert (counter() or {}).get("node") in pool[:2]

        # Nothing was refused on the way.
        for proc in procs.values():
            log = proc.log_text()
            assert not re.search(r"\b403\b|[Ff]orbidden", log), f"{proc.name}:\n{log}"
        # The operator first, so that it does not start recovering the nodes' agents.
        for proc in reversed(procs.values()):
            proc.terminate()
        sh.doc("uninstall")
        assert not custom.list_cluster_custom_object(
            GROUP, VERSION, "igornodes", label_selector="igor.dev/pool=igor-node"
        )["items"]
        assert not webhooks()
    finally:
        for proc in reversed(procs.values()):
            proc.terminate()
        tools.helm("uninstall", "igor", "--namespace", ns, check=False)
        tools.kubectl("delete", "igornodes", "-l", "igor.dev/pool=igor-node", check=False)
        tools.kubectl(
            "delete",
            "validatingwebhookconfiguration,mutatingwebhookconfiguration",
            f"igor.{ns}.igor.dev",
            "--ignore-not-found",
            check=False,
        )
        core = client.CoreV1Api(k8s)
        for name in (agents_ns, ns):
            with contextlib.suppress(ApiException):
                core.delete_namespace(name)


# ------------------------------------------------------------------ a diverged migration's bundle


def test_a_diverged_bundle_is_fetched_and_replayed_as_documented(tools, k8s, tmp_path):
    """The bundle the operator keeps for a diverged migration (a ConfigMap igor-bundle-<name>,
    binaryData.bundle, as migrations.py stores it), fetched and replayed with the commands of
    docs/operations.md. The bundle is a real one, of the non-deterministic example agent."""
    ns = make_namespace(k8s, "chart-bundle")
    sh = Shell(tools, tmp_path, ns, ns)
    module = agents.path("nondeterministic")
    igor = [sys.executable, "-m", "igor"]
    subprocess.run(
        [*igor, "run", str(module), "--ticks", "40", "--out", str(tmp_path / "nd"), "--quiet"],
        check=True,
        capture_output=True,
    )
    bundle = tmp_path / "nd.bundle"
    subprocess.run(
        [*igor, "bundle", str(tmp_path / "nd"), "--from-tick", "20", "-o", str(bundle)],
        check=True,
        capture_output=True,
    )
    client.CoreV1Api(k8s).create_namespaced_config_map(
        ns,
        {
            "metadata": {"name": "igor-bundle-counter-move-1"},
            "binaryData": {"bundle": base64.b64encode(bundle.read_bytes()).decode()},
        },
    )
    try:
        proc = sh.doc("fetch-bundle", check=False)
        assert proc.returncode == 1, proc
        assert "DIVERGED at tick" in proc.stdout
        assert (tmp_path / "counter-move-1.bundle").read_bytes() == bundle.read_bytes()
    finally:
        with contextlib.suppress(ApiException):
            client.CoreV1Api(k8s).delete_namespace(ns)
