"""No Docker engine runs here: lint the Dockerfile with hadolint and check what matters."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.server import running_server

DOCKER = Path(__file__).parent.parent / "docker"


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed for this platform")
    result = subprocess.run(
        [hadolint, str(DOCKER / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_non_root_user_with_a_health_check() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/health", text, re.M)
    assert 'CMD ["whatsapp-api", "serve"]' in text
    for volume in ("data", "uploads", "instances", "logs"):
        assert f"/usr/src/app/{volume}" in text


def test_the_health_check_follows_port_and_fails_when_nothing_answers(tmp_path: Path) -> None:
    """The image's own HEALTHCHECK command, run here as Docker would run it in the container
    (with the image's PORT), against a real server."""
    text = (DOCKER / "Dockerfile").read_text()
    found = re.search(r"^HEALTHCHECK .*\\\n\s*CMD (\[.*\])$", text, re.M)
    assert found, "HEALTHCHECK ... CMD [...] in JSON form"
    command = json.loads(found[1])
    assert "3000/" not in " ".join(command)  # the port comes from PORT
    if shutil.which(command[0]) is None or shutil.which("curl") is None:
        pytest.skip("needs sh and curl")

    def check(port: int) -> int:
        env = {"PATH": os.environ["PATH"], "PORT": str(port)}
        return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode

    with running_server(tmp_path) as server:
        assert check(server.port) == 0
    assert check(server.port) == 1  # stopped: unhealthy (1; Docker reserves other codes)


def test_the_image_has_the_tools_the_seed_runs_in_it() -> None:
    """The seed's compose health check runs curl; its backup commands run sqlite3."""
    text = (DOCKER / "Dockerfile").read_text()
    installed = re.search(r"apt-get install -y --no-install-recommends ([^\\&]+)", text)
    assert installed, "an apt-get install line"
    assert {"curl", "sqlite3"} <= set(installed[1].split())


def test_compose_has_mongodb_as_a_replica_set_the_volumes_and_restarts() -> None:
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"mongodb", "whatsapp-api"}
    assert all(s["restart"] == "unless-stopped" for s in services.values())
    assert "--replSet" in " ".join(services["mongodb"]["entrypoint"])
    assert "MONGO_INITDB_ROOT_PASSWORD" in services["mongodb"]["environment"]
    mounts = {v.split(":")[1] for v in services["whatsapp-api"]["volumes"]}
    assert mounts == {f"/usr/src/app/{v}" for v in ("instances", "uploads", "logs", "data")}
    app_env = services["whatsapp-api"]["environment"]
    assert "replicaSet=rs0" in app_env["DATABASE_URL"]
    assert app_env["DATABASE_PROVIDER"] == "${DATABASE_PROVIDER:-mongodb}"


def test_the_cluster_compose_runs_three_nodes_on_one_replica_set_behind_round_robin() -> None:
    compose = yaml.safe_load((DOCKER / "docker-compose.cluster.yml").read_text())
    services = compose["services"]
    nodes = {name: s for name, s in services.items() if name.startswith("node")}
    assert len(nodes) == 3
    mongod = " ".join(services["mongodb"]["entrypoint"])
    assert "--replSet" in mongod and "transactionLifetimeLimitSeconds=10" in mongod
    from app.config import Settings

    for name, node in nodes.items():
        env = {k: str(v) for k, v in node["environment"].items()}
        assert env["NODE_URL"] == f"http://{name}:3000" and env["NODE_ID"] == name
        assert env["CLUSTER_SECRET"] == "${CLUSTER_SECRET:?set CLUSTER_SECRET}"
        # Every node reads as a node of a cluster (values as docker would substitute them).
        env.update(
            DATABASE_URL="mongodb://w:p@mongodb:27017/whatsapp-api?replicaSet=rs0",
            JWT_SECRET="j" * 40,
            ADMIN_PASSWORD="not-the-default",
            CLUSTER_SECRET="c" * 40,
            LEASE_TTL="10s",
        )
        cluster = Settings.from_env(env).cluster
        assert cluster is not None and cluster.node_id == name
        # One volume for instances and uploads, shared by every node.
        assert {v.split(":")[0] for v in node["volumes"]} == {
            "whatsapp_instances",
            "whatsapp_uploads",
        }
    conf = (DOCKER / "nginx-cluster.conf").read_text()
    assert all(f"server {name}:3000" in conf for name in nodes)
    assert "ip_hash" not in conf and "sticky" not in conf  # plain round robin
    assert services["balancer"]["ports"] == ["3000:80"]


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = (DOCKER.parent / ".dockerignore").read_text().split()
    for entry in (".venv", "data", "uploads", "instances", "logs", "tests"):
        assert entry in ignored


def test_the_image_holds_every_package_of_the_project() -> None:
    import tomllib

    project = tomllib.loads((DOCKER.parent / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    text = (DOCKER / "Dockerfile").read_text()
    assert [p for p in packages if f"COPY {p} ./{p}" not in text] == []
