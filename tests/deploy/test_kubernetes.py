"""The Kubernetes manifests validate against the API's schemas, offline, and say what they promise.

kubernetes-validate bundles the JSON schemas of every Kubernetes release, so
this needs no cluster and no network. Validation is strict: a misspelt field
is an error, not something the API server would silently drop.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSIONS = ("1.29.0", "1.33.0")


def documents() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path.name, doc))
    return out


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,doc", documents(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_manifest_validates_strictly(name: str, doc: dict, version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def by_kind() -> dict[str, dict]:
    return {doc["kind"]: doc for _, doc in documents()}


def test_the_daemonset_is_probed_keyed_and_keeps_its_data_on_the_host() -> None:
    kinds = by_kind()
    ds = kinds["DaemonSet"]["spec"]["template"]["spec"]
    node = ds["containers"][0]
    assert node["livenessProbe"]["exec"]["command"][-1] == "--live"
    assert node["readinessProbe"]["exec"]["command"][-1] == "swarmnode.health"
    volumes = {v["name"]: v for v in ds["volumes"]}
    assert volumes["data"]["hostPath"]["path"] == "/var/lib/swarmnode"
    assert volumes["cluster-key"]["secret"]["secretName"] == "swarmnode-cluster-key"
    key_mount = next(m for m in node["volumeMounts"] if m["name"] == "cluster-key")
    assert "subPath" not in key_mount  # a subPath mount never sees a rotated Secret
    env = {e["name"]: e.get("value") for e in node["env"]}
    service = kinds["Service"]
    assert env["SWARMNODE_JOIN_DNS"].startswith(service["metadata"]["name"] + ".")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert kinds["Secret"]["metadata"]["name"] == "swarmnode-cluster-key"
