"""The Kubernetes manifests under deploy/ agree with the code they run.

Every YAML document under deploy/ is parsed (no cluster, no kubectl) and checked against the
application itself: the probe and metrics paths are requested from the real app in process
(no socket), ports are compared with the Settings defaults, every environment variable with the
Settings fields, the uid and ports with the Dockerfile. The rest are the deployment's own
invariants: three replicas, IRSA and no static AWS keys, a hardened security context, a PDB and
a NetworkPolicy that select the server's pods, a migration Job that runs ``ekms migrate``
outside the server's kustomization, and kustomizations that list files that exist.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.api.metrics_app import metrics_app
from app.bootstrap import build_rest_app, refuse_public_bind_with_dev_secret, running
from app.infra.settings import Settings

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZATION = "kustomization.yaml"

Doc = dict[str, Any]

SETTINGS_ENV = {f"EKMS_{name.upper()}" for name in Settings.model_fields}
# Standard AWS SDK variables a manifest may set; credentials are not among them.
AWS_ENV = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_STS_REGIONAL_ENDPOINTS"}
STATIC_AWS_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
ALLOWED_EGRESS = {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 443)}


# --- loading -------------------------------------------------------------------------------


@cache
def _documents() -> tuple[tuple[Path, Doc], ...]:
    found: list[tuple[Path, Doc]] = []
    for path in sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                found.append((path, doc))
    return tuple(found)


def _manifests() -> list[tuple[Path, Doc]]:
    return [(path, doc) for path, doc in _documents() if doc.get("kind") != "Kustomization"]


def _all(kind: str) -> list[Doc]:
    return [doc for _, doc in _manifests() if doc["kind"] == kind]


def _one(kind: str) -> Doc:
    docs = _all(kind)
    assert len(docs) == 1, f"expected one {kind} under deploy/, found {len(docs)}"
    return docs[0]


def _service(*, headless: bool) -> Doc:
    services = [s for s in _all("Service") if (s["spec"].get("clusterIP") == "None") == headless]
    assert len(services) == 1, f"expected one {'headless ' if headless else ''}Service"
    return services[0]


def _pod(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def _container(workload: Doc) -> Doc:
    containers = _pod(workload)["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']}: one container expected"
    container: Doc = containers[0]
    return container


def _pod_labels(workload: Doc) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are checked: {selector}"
    match = selector.get("matchLabels") or {}
    assert match, "an empty selector selects every pod"
    return all(labels.get(key) == value for key, value in match.items())


def _container_ports(workload: Doc) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in _container(workload)["ports"]}


def _resolve_port(port: int | str, named: dict[str, int]) -> int:
    if isinstance(port, int):
        return port
    assert port in named, f"port name {port!r} is not a containerPort ({sorted(named)})"
    return named[port]


def _config() -> dict[str, str]:
    data: dict[str, str] = _one("ConfigMap")["data"]
    return data


def _secret_env() -> dict[str, str]:
    secret = _one("Secret")
    return {**secret.get("data", {}), **secret.get("stringData", {})}


def _settings_default(field: str) -> Any:
    return Settings.model_fields[field].default


def _dockerfile_uid() -> int:
    match = re.search(r"^USER\s+(\d+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile sets no numeric USER"
    return int(match.group(1))


def _kustomize_files(directory: Path) -> list[Path]:
    """The manifest files ``kubectl apply -k directory`` would read, following directories."""
    kustomization = yaml.safe_load((directory / KUSTOMIZATION).read_text(encoding="utf-8"))
    files: list[Path] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            files.extend(_kustomize_files(target))
        else:
            files.append(target)
    return files


def _kinds_in(directory: str) -> set[str]:
    files = set(_kustomize_files(DEPLOY / directory))
    return {doc["kind"] for path, doc in _manifests() if path.resolve() in files}


@pytest.fixture
def no_ekms_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Settings read only what the test sets, whatever the shell exported."""
    for name in [name for name in os.environ if name.startswith("EKMS_")]:
        monkeypatch.delenv(name)
    return monkeypatch


# --- every document ------------------------------------------------------------------------


def test_every_document_is_a_named_kubernetes_object() -> None:
    assert _manifests(), "no manifests under deploy/"
    seen: set[tuple[str, str]] = set()
    for path, doc in _manifests():
        where = path.relative_to(ROOT)
        assert doc.get("apiVersion") and doc.get("kind"), f"{where}: no apiVersion/kind"
        name = doc.get("metadata", {}).get("name")
        assert name, f"{where}: {doc['kind']} without metadata.name"
        assert "namespace" not in doc["metadata"], f"{where}: namespace is chosen at apply time"
        assert (doc["kind"], name) not in seen, f"{where}: a second {doc['kind']} {name}"
        seen.add((doc["kind"], name))


def test_kustomizations_list_files_that_exist_and_every_manifest_is_listed() -> None:
    kustomizations = sorted(DEPLOY.rglob(KUSTOMIZATION))
    assert {path.parent.name for path in kustomizations} >= {"base", "migrate"}
    listed: set[Path] = set()
    for path in kustomizations:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc["kind"] == "Kustomization", path
        assert doc.get("resources"), f"{path}: lists no resources"
        for entry in doc["resources"]:
            target = path.parent / entry
            assert target.exists(), f"{path.relative_to(ROOT)} lists {entry}, which is missing"
            if target.is_dir():
                assert (target / KUSTOMIZATION).is_file(), f"{target} has no {KUSTOMIZATION}"
            else:
                listed.add(target.resolve())
    orphans = {path.resolve() for path, _ in _manifests()} - listed
    assert not orphans, f"manifests no kustomization applies: {sorted(map(str, orphans))}"


def test_each_kustomization_applies_what_its_step_needs() -> None:
    assert {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ConfigMap",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= _kinds_in("base")
    assert "Job" not in _kinds_in("base"), "the migration must not ride along with the rollout"
    assert "Job" in _kinds_in("migrate")
    # Applying base or migrate never overwrites the real database URL with the placeholder.
    assert "Secret" not in _kinds_in("base") | _kinds_in("migrate")
    assert _kinds_in("secret") == {"Secret"}


# --- the server ----------------------------------------------------------------------------


def test_deployment_runs_three_replicas_of_ekms_serve() -> None:
    deployment = _one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    container = _container(deployment)
    assert [*container["command"], *container["args"]] == ["ekms", "serve"]
    assert _selects(deployment["spec"]["selector"], _pod_labels(deployment))
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


async def test_probe_and_metrics_paths_answer_on_a_healthy_app(
    tmp_path: Path, no_ekms_env: pytest.MonkeyPatch
) -> None:
    # The real composition root and app factories on an embedded SQLite, over in-process ASGI
    # transports: no socket is bound, and a path that is not routed would answer 404.
    deployment = _one("Deployment")
    container = _container(deployment)
    paths = {
        name: container[name]["httpGet"]["path"] for name in PROBES if "httpGet" in container[name]
    }
    assert paths["livenessProbe"] == "/livez"
    assert paths["readinessProbe"] == "/readyz"
    metrics = deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
    settings = Settings(data_dir=tmp_path, scheduler_enabled=False)
    async with running(settings) as app_container:
        transport = httpx.ASGITransport(app=build_rest_app(app_container))
        async with httpx.AsyncClient(transport=transport, base_url="http://ekms") as client:
            for path in paths.values():
                response = await client.get(path)
                assert response.status_code == 200, (path, response.status_code, response.text)
            # The public port does not serve the metrics (finding 8): they have their own port.
            public = await client.get(metrics)
            assert public.status_code == 404
            assert public.headers["content-type"] == "application/problem+json"
        scraper = httpx.ASGITransport(app=metrics_app)
        async with httpx.AsyncClient(transport=scraper, base_url="http://ekms") as client:
            response = await client.get(metrics)
            assert response.status_code == 200, (metrics, response.status_code)
            assert "ekms_http_requests_total" in response.text


def test_ports_match_the_settings_defaults_and_the_probes() -> None:
    deployment = _one("Deployment")
    ports = _container_ports(deployment)
    assert ports == {
        "http": _settings_default("http_port"),
        "grpc": _settings_default("grpc_port"),
        "metrics": _settings_default("metrics_port"),
    }
    assert int(_config()["EKMS_HTTP_PORT"]) == ports["http"]
    assert int(_config()["EKMS_GRPC_PORT"]) == ports["grpc"]
    assert int(_config()["EKMS_METRICS_PORT"]) == ports["metrics"]
    container = _container(deployment)
    assert all(name in container for name in PROBES), "startup, liveness and readiness probes"
    grpc_probes = 0
    for name in PROBES:
        probe = container[name]
        if "httpGet" in probe:
            assert _resolve_port(probe["httpGet"]["port"], ports) == ports["http"], name
        else:
            assert "grpc" in probe, f"{name}: httpGet or grpc expected"
            assert probe["grpc"]["port"] == ports["grpc"], name
            assert probe["grpc"].get("service", "") == "", "the standard overall health service"
            grpc_probes += 1
    assert grpc_probes == 1, "one probe asks the grpc.health.v1 service"
    exposed = re.findall(r"^EXPOSE\s+(.+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert {str(port) for port in ports.values()} <= set(" ".join(exposed).split())


def test_grpc_probe_speaks_plaintext_to_a_plaintext_server() -> None:
    # The kubelet's gRPC probe cannot do TLS: with EKMS_GRPC_TLS_* set, the probe must change.
    container = _container(_one("Deployment"))
    if any("grpc" in container[name] for name in PROBES):
        names = {*_config(), *(env["name"] for env in container.get("env", []))}
        tls = {name for name in names if name.startswith("EKMS_GRPC_TLS_")}
        assert not tls, f"a kubelet gRPC probe against a TLS listener always fails: {tls}"


def test_service_exposes_http_and_grpc_of_the_server_pods() -> None:
    service, deployment = _service(headless=False), _one("Deployment")
    ports = _container_ports(deployment)
    assert service["spec"]["type"] == "ClusterIP"
    assert _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(deployment))
    assert not _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(_one("Job")))
    by_name = {port["name"]: port for port in service["spec"]["ports"]}
    # Not the metrics port: Prometheus scrapes each pod, and clients of the Service never see it.
    assert set(by_name) == {"http", "grpc"}
    for name, port in by_name.items():
        assert _resolve_port(port["targetPort"], ports) == ports[name]
        assert port["port"] == ports[name]
    assert by_name["grpc"]["appProtocol"] == "grpc"


def test_headless_service_gives_grpc_clients_every_ready_server_pod() -> None:
    service, deployment = _service(headless=True), _one("Deployment")
    ports = _container_ports(deployment)
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"  # headless: clusterIP None
    assert not service["spec"].get("publishNotReadyAddresses", False)
    assert _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(deployment))
    assert not _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(_one("Job")))
    (grpc,) = service["spec"]["ports"]
    assert grpc["appProtocol"] == "grpc" and grpc["port"] == ports["grpc"]
    assert _resolve_port(grpc["targetPort"], ports) == ports["grpc"]
    assert service["metadata"]["name"] in (DEPLOY / "README.md").read_text()


def test_metrics_are_scraped_by_annotation_on_the_metrics_port() -> None:
    deployment = _one("Deployment")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == _container_ports(deployment)["metrics"]
    assert annotations["prometheus.io/path"] == "/metrics"


def test_graceful_shutdown_outlasts_the_endpoint_drain() -> None:
    deployment = _one("Deployment")
    pre_stop = _container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = int(pre_stop[1])
    assert drain >= 5, "endpoint removal needs a few seconds to reach kube-proxy and clients"
    grace = _pod(deployment)["terminationGracePeriodSeconds"]
    assert grace >= drain + 20, "time left after the preStop sleep for the gRPC/HTTP drain"


def test_replicas_spread_across_nodes() -> None:
    deployment = _one("Deployment")
    labels = _pod_labels(deployment)
    spread = [
        constraint
        for constraint in _pod(deployment).get("topologySpreadConstraints", [])
        if constraint["topologyKey"] == "kubernetes.io/hostname"
        and _selects(constraint["labelSelector"], labels)
    ]
    assert spread, "a hostname topology spread constraint over the server's pods"
    assert spread[0]["maxSkew"] == 1
    assert spread[0]["whenUnsatisfiable"] == "DoNotSchedule"


def test_pdb_selects_the_server_pods_and_keeps_two_up() -> None:
    pdb, deployment = _one("PodDisruptionBudget"), _one("Deployment")
    assert _selects(pdb["spec"]["selector"], _pod_labels(deployment))
    assert not _selects(pdb["spec"]["selector"], _pod_labels(_one("Job")))
    replicas = deployment["spec"]["replicas"]
    if "maxUnavailable" in pdb["spec"]:
        assert pdb["spec"]["maxUnavailable"] == 1
    else:
        assert 2 <= pdb["spec"]["minAvailable"] < replicas


# --- configuration and identity ------------------------------------------------------------


def test_every_variable_is_a_setting_or_a_standard_aws_variable() -> None:
    names = set(_config()) | set(_secret_env())
    for kind in ("Deployment", "Job"):
        names |= {env["name"] for env in _container(_one(kind)).get("env", [])}
    unknown = names - SETTINGS_ENV - AWS_ENV
    assert not unknown, f"not EKMS_ + a Settings field, nor a standard AWS variable: {unknown}"
    assert set(_secret_env()) == {"EKMS_DATABASE_URL"}
    secret_fields = {
        f"EKMS_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    assert secret_fields, "Settings has SecretStr fields"
    leaked = (secret_fields | {"EKMS_DATABASE_URL"}) & set(_config())
    assert not leaked, f"secrets belong in a Secret, not the ConfigMap: {leaked}"


def test_env_sources_exist() -> None:
    config_name = _one("ConfigMap")["metadata"]["name"]
    secret_name = _one("Secret")["metadata"]["name"]
    for kind in ("Deployment", "Job"):
        container = _container(_one(kind))
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] == config_name, kind
            else:
                assert source["secretRef"]["name"] == secret_name, kind
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                assert ref["name"] == config_name and ref["key"] in _config(), env["name"]


def test_config_and_secret_make_valid_production_settings(
    no_ekms_env: pytest.MonkeyPatch,
) -> None:
    values = {**_config(), **_secret_env()}
    assert all(isinstance(value, str) for value in values.values()), "ConfigMap data are strings"
    for name, value in values.items():
        no_ekms_env.setenv(name, value)
    settings = Settings()
    assert ipaddress.ip_address(settings.http_host).is_unspecified, "probes reach the pod IP"
    assert ipaddress.ip_address(settings.grpc_host).is_unspecified
    assert settings.metrics_host and ipaddress.ip_address(settings.metrics_host).is_unspecified
    assert settings.kms_provider == "aws"
    assert settings.aws_region
    assert not settings.embedded and settings.effective_database_url.startswith("postgresql")
    assert settings.effective_auto_migrate is False, "the migration Job migrates, not the pods"
    assert settings.log_json is True
    assert settings.jwt_jwks_url and settings.jwt_jwks_url.startswith("https://")
    assert settings.jwt_issuer and settings.jwt_audience
    assert settings.jwt_hs256_secret is None, "production verifies tokens against the JWKS"
    refuse_public_bind_with_dev_secret(settings)  # `ekms serve` accepts the 0.0.0.0 binds


def test_no_static_aws_credentials_anywhere_under_deploy() -> None:
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8").upper()
        for name in STATIC_AWS_CREDENTIALS:
            assert name not in text, f"{path.relative_to(ROOT)} mentions {name}"


def test_aws_identity_is_irsa_and_the_region_is_set() -> None:
    account = _one("ServiceAccount")
    role = account["metadata"]["annotations"][IRSA_ANNOTATION]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", role), role
    deployment = _one("Deployment")
    assert _pod(deployment)["serviceAccountName"] == account["metadata"]["name"]
    env = {item["name"]: item for item in _container(deployment)["env"]}
    region = env["AWS_REGION"]["valueFrom"]["configMapKeyRef"]["key"]
    assert _config()[region] == _config()["EKMS_AWS_REGION"]


# --- the migration -------------------------------------------------------------------------


def test_migration_job_runs_ekms_migrate_before_the_rollout() -> None:
    job, deployment = _one("Job"), _one("Deployment")
    container = _container(job)
    assert [*container["command"], *container["args"]] == ["ekms", "migrate"]
    assert container["image"] == _container(deployment)["image"], "the same release's schema"
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "PreSync"
    assert "pre-upgrade" in annotations["helm.sh/hook"].split(",")
    assert _pod(job)["restartPolicy"] == "Never"
    server_account = _one("ServiceAccount")["metadata"]["name"]
    assert _pod(job).get("serviceAccountName") != server_account, "migrations need no KMS role"


# --- security ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_hardened_as_the_image_user(kind: str) -> None:
    workload = _one(kind)
    pod, container = _pod(workload), _container(workload)
    security = {**pod["securityContext"], **container["securityContext"]}
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == _dockerfile_uid() == 10001
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert not security["capabilities"].get("add")
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False, "Service links inject EKMS_* variables"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    # A path inside the container, not a temporary file of this test.
    tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]  # noqa: S108
    assert tmp and "emptyDir" in volumes[tmp[0]["name"]], "a writable /tmp"
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][bound]), bound


MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def test_network_policy_opens_serving_ports_to_clients_and_metrics_to_monitoring_only() -> None:
    deployment = _one("Deployment")
    ports = _container_ports(deployment)
    policies = [
        policy
        for policy in _all("NetworkPolicy")
        if _selects(policy["spec"]["podSelector"], _pod_labels(deployment))
    ]
    assert len(policies) == 1
    spec = policies[0]["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    by_peers: dict[str, set[int]] = {}
    for rule in spec["ingress"]:
        assert rule.get("from"), "every ingress rule names its clients"
        admitted = {_resolve_port(port["port"], ports) for port in rule["ports"]}
        kind = "monitoring" if rule["from"] == [MONITORING] else "clients"
        by_peers[kind] = by_peers.get(kind, set()) | admitted
    # Finding 8: the metrics (module names, table.column, MAP_REJECTED counts) reach the
    # scraper's namespace only, and the scraper reaches nothing else.
    assert by_peers == {"clients": {ports["http"], ports["grpc"]}, "monitoring": {ports["metrics"]}}
    _assert_egress_within(spec, ALLOWED_EGRESS)


def test_migration_network_policy_reaches_only_dns_and_postgres() -> None:
    job = _one("Job")
    policies = [
        policy
        for policy in _all("NetworkPolicy")
        if _selects(policy["spec"]["podSelector"], _pod_labels(job))
    ]
    assert len(policies) == 1
    spec = policies[0]["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert not spec.get("ingress")
    _assert_egress_within(spec, {("UDP", 53), ("TCP", 53), ("TCP", 5432)})


def _assert_egress_within(spec: Doc, allowed: set[tuple[str, int]]) -> None:
    egress: set[tuple[str, int]] = set()
    for rule in spec["egress"]:
        assert rule.get("ports"), "an egress rule without ports allows every port"
        egress |= {(port.get("protocol", "TCP"), port["port"]) for port in rule["ports"]}
    assert egress <= allowed, f"egress beyond {sorted(allowed)}: {sorted(egress - allowed)}"
    assert ("TCP", 5432) in egress


# --- the image -----------------------------------------------------------------------------


def _docker_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, enough for these patterns: a path is left out if it or a parent matches."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatchcase(prefix, pattern.rstrip("/").removeprefix("**/"))
        or fnmatch.fnmatchcase(prefix, pattern.rstrip("/"))
        for pattern in patterns
        for prefix in prefixes
    )


def test_build_context_leaves_out_secrets_and_local_state_but_not_the_sources() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "no re-inclusion: keep it simple"
    for path in (
        "data/ekms-local-root.key",
        "data/dev-jwt-hs256.secret",
        "data/ekms.db",
        ".venv/bin/python",
        ".cache/kmip-venv/bin/python",
        ".git/HEAD",
        "bench/results/soak.json",
        "app/__pycache__/server.cpython-311.pyc",
    ):
        assert _docker_ignored(path, patterns), f"{path} would go into the build context"
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", dockerfile, re.MULTILINE)
    sources = [src for line in copied for src in line.split()]
    assert {"uv.lock", "app", "migrations"} <= set(sources)
    for source in sources:
        assert not _docker_ignored(source, patterns), f"the Dockerfile copies ignored {source}"
    for path in ("app/api/docs_static/swagger-init.js", "migrations/env.py"):
        assert not _docker_ignored(path, patterns), path


def test_base_image_and_uv_are_pinned() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)$", dockerfile, re.MULTILINE))
    images = [
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        for image in re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    ]
    assert len(images) == 2
    for image in images:
        exact_tag = re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+", image)
        digest = re.fullmatch(r"python[^@]*@sha256:[0-9a-f]{64}", image)
        assert exact_tag or digest, f"{image} is not pinned to an exact release or digest"
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert installs and all('"uv==${UV_VERSION}"' in line for line in installs), installs
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["UV_VERSION"])
    assert re.search(r"^HEALTHCHECK .*app\.healthcheck", dockerfile, re.MULTILINE)
