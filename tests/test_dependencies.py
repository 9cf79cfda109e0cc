"""Dependency audit: fail on a known vulnerability that has a fixed version to move to.

pip-audit asks a vulnerability service (PyPI's JSON API, or osv.dev with `-s osv`) about
each installed distribution. A dependency it could not ask about is not audited: if any
is left so, the test is skipped and says how many and why, never passed (where the
service answers for everything, `make audit` runs the same audit by hand).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.drills import record

OWN_PROJECT = "distribution marked as editable"


@dataclass(frozen=True)
class Audit:
    audited: list[str]
    not_audited: dict[str, str]  # name -> pip-audit's reason
    fixable: list[str]


def judge(report: dict[str, Any]) -> Audit:
    """What a `pip-audit -f json` report says was audited, and what needs an upgrade
    (our own project, installed editable, is left out with `--skip-editable`)."""
    audited, not_audited, fixable = [], {}, []
    for dependency in report["dependencies"]:
        if dependency.get("skip_reason") == OWN_PROJECT:
            continue
        if "skip_reason" in dependency or "version" not in dependency:
            not_audited[dependency["name"]] = dependency.get("skip_reason", "no version")
            continue
        audited.append(dependency["name"])
        fixable += [
            f"{dependency['name']} {dependency['version']}: {vuln['id']} "
            f"(fixed in {', '.join(vuln['fix_versions'])})"
            for vuln in dependency.get("vulns", [])
            if vuln.get("fix_versions")
        ]
    return Audit(audited, not_audited, fixable)


@pytest.mark.drill("dependency audit (pip-audit)")
def test_no_dependency_has_a_known_vulnerability_with_a_fix() -> None:
    audit_command = shutil.which("pip-audit", path=str(Path(sys.executable).parent))
    if audit_command is None:
        pytest.skip("pip-audit is not installed")
    result = subprocess.run(
        [audit_command, "-f", "json", "--progress-spinner", "off", "--skip-editable"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not result.stdout.strip().startswith("{"):
        if "Connection" in result.stderr or "Max retries" in result.stderr:
            pytest.skip(f"the vulnerability service is unreachable: {result.stderr[-300:]}")
        pytest.fail(f"pip-audit failed: {result.stderr[-2000:]}")
    audit = judge(json.loads(result.stdout))
    record(
        audited=len(audit.audited),
        not_audited=len(audit.not_audited),
        fixable=len(audit.fixable),
    )
    assert not audit.fixable, "upgrade these:\n" + "\n".join(audit.fixable)
    if audit.not_audited:
        name, reason = next(iter(audit.not_audited.items()))
        pytest.skip(
            f"could not audit {len(audit.not_audited)} of "
            f"{len(audit.not_audited) + len(audit.audited)} dependencies; run `make audit` "
            f"where the vulnerability service answers ({name}: {reason})"
        )
    assert len(audit.audited) > 20  # the audit saw the environment


# pip-audit 2.10's JSON report, as it comes out when the service answers for some
# dependencies and not for others (the second form is what the test machines get).
REPORT = {
    "dependencies": [
        {"name": "starlette", "version": "0.35.0", "vulns": []},
        {
            "name": "jinja2",
            "version": "3.1.2",
            "vulns": [
                {"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"], "aliases": []},
                {"id": "PYSEC-0000-0", "fix_versions": [], "aliases": []},
            ],
        },
        {"name": "whatsapp-api", "skip_reason": "distribution marked as editable"},
        {
            "name": "aiohttp",
            "skip_reason": "Dependency not found on PyPI and could not be audited: aiohttp (3.14.5)",
        },
    ],
    "fixes": [],
}


def test_a_dependency_that_could_not_be_audited_is_not_counted_as_audited() -> None:
    audit = judge(REPORT)
    assert audit.audited == ["starlette", "jinja2"]
    assert list(audit.not_audited) == ["aiohttp"]
    assert audit.fixable == ["jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)"]


def test_the_gpl_test_server_is_only_a_test_dependency() -> None:
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if "secantus" in d.lower()]
    assert "SecantusDB==0.7.0b3" in project["optional-dependencies"]["test"]
    for path in (root / "docker").iterdir():
        assert "secantus" not in path.read_text().lower(), path.name
