"""What a newcomer does first: open the server's address, then run the README's commands."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.server import Api, Server, running_server, wait_until

pytestmark = pytest.mark.sqlite_only("what a newcomer meets first runs on the default provider")

# What Chromium 120 sends for a page it navigates to.
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)


def test_the_root_sends_a_browser_to_the_console_and_a_program_to_an_index(
    server: Server,
) -> None:
    client = server.client()
    browser = client.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert browser.status_code == 307 and browser.headers["location"] == "/ui/"
    assert "accept" in browser.headers["vary"].lower()
    for accept in ("application/json", "*/*", None):
        answer = client.get("/", headers={"Accept": accept} if accept else {})
        assert answer.status_code == 200, (accept, answer.text)
        index = answer.json()
        assert index == {
            "name": "WhatsApp Multi-Instance API",
            "version": index["version"],
            "docs": "/docs",
            "health": "/health",
        }
        assert index["version"] and client.get(index["docs"]).status_code == 200
        assert client.get(index["health"]).json()["status"] == "ok"
    # Followed to the end, the browser lands on the console's page.
    landed = client.get("/", headers={"Accept": BROWSER_ACCEPT}, follow_redirects=True)
    assert landed.url.path == "/ui/instances" and "<html" in landed.text.lower()


# -- the README's commands, as a newcomer types them after `make serve` ----------------------

REPO = Path(__file__).resolve().parent.parent
TOOL = ".venv/bin/whatsapp-api"
SUBCOMMANDS = r"(?:serve|events|rebuild-projections|doctor|backup|restore|--help)"
# A shell without the virtualenv on its PATH, as after `make serve` in a new terminal.
NEWCOMER_PATH = "/usr/local/bin:/usr/bin:/bin"


def readme_commands() -> list[str]:
    """The tool's command lines in the README's shell blocks, as written."""
    blocks = re.findall(r"^```sh\n(.*?)^```", (REPO / "README.md").read_text(), re.S | re.M)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip().startswith(TOOL)
    ]


def test_the_readme_writes_the_tool_where_make_serve_puts_it() -> None:
    text = (REPO / "README.md").read_text()
    # `whatsapp-api doctor` alone is "command not found" after `make serve`; inside a Docker
    # container (`docker exec NAME whatsapp-api ...`) it is on the PATH.
    bare = [
        found[0]
        for found in re.finditer(rf"(?<![/\w-])whatsapp-api {SUBCOMMANDS}", text)
        if not re.search(r"docker (?:compose )?exec(?: -\w+)* \S+ $", text[: found.start()])
    ]
    assert bare == [], bare
    documented = {c.split()[1] for c in readme_commands()}
    assert documented >= {"doctor", "events", "rebuild-projections", "backup", "restore"}
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    plan = subprocess.run(
        ["make", "-n", "serve"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert f"{TOOL} serve" in plan.stdout, plan.stdout + plan.stderr


def test_the_readme_commands_run_as_written(tmp_path: Path) -> None:
    """Each command line of the README's shell blocks, run as written from a checkout where
    `make serve` made .venv and runs the server with the defaults (data under ./data, the
    JWT secret it generated there), by a shell that does not have .venv/bin on its PATH."""
    (tmp_path / ".venv").symlink_to(sys.prefix)  # the virtualenv `make serve` made
    with running_server(tmp_path, JWT_SECRET="") as server:
        api = Api.login(server)
        instance = api.create_instance("Readme")["id"]
        api.pair(instance, "15550301001")
        sent = api.send(instance, "15550301002", "from the README test").json()["id"]
        environment = {"PATH": NEWCOMER_PATH, "HOME": str(tmp_path), "LANG": "C.UTF-8"}
        ran = []
        for line in readme_commands():
            command = re.sub(r"\bID\b", instance, line)
            where = tmp_path
            if command.split()[1] == "restore":
                # "into an empty data directory": a new checkout, with the backup just made.
                where = tmp_path / "elsewhere"
                where.mkdir()
                (where / ".venv").symlink_to(sys.prefix)
                archive = command.split()[2]
                shutil.copyfile(tmp_path / archive, where / archive)
            if "--follow" in command:
                follow(command, where, environment, until=sent)
            else:
                result = subprocess.run(
                    ["bash", "-c", command],
                    cwd=where,
                    env=environment,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert result.returncode == 0, (line, result.stdout, result.stderr)
                assert result.stdout.strip(), line
            ran.append(line.split()[1])
        assert {"doctor", "events", "rebuild-projections", "backup", "restore"} <= set(ran)
        # What was restored elsewhere is this installation: its events, secret and sessions.
        assert (tmp_path / "elsewhere" / "data" / "jwt-secret").read_text() == (
            tmp_path / "data" / "jwt-secret"
        ).read_text()
        # The sandbox's pairing is in its events (no session file), restored with them.
        opened = Server(tmp_path / "elsewhere").stored_events(instance, topic="ConnectionOpened")
        assert [e.phone for e in opened] == ["15550301001"]
        # The server carried on serving what it had (the rebuild swapped read models under it).
        assert api.status(instance)["ready"]


def follow(command: str, cwd: Path, environment: dict[str, str], until: str) -> None:
    """A `--follow` command prints what is stored and keeps running: read until `until`
    shows, then stop it (it runs until stopped, like `tail -f`)."""
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(
        target=lambda: seen.extend(iter(process.stdout.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        wait_until(lambda: any(until in line for line in seen), timeout=60)
        assert process.poll() is None, "it stopped instead of following"
    finally:
        process.terminate()
        process.wait(10)
