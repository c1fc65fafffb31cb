"""npm (11 and later) skips the install scripts of dependencies that package.json's
allowScripts does not name, and ends `npm ci` with a warning listing them. Each
package with an install script is decided there: allowed (true) or refused
(false), and nothing else is named, so `npm ci` is quiet and a new dependency
with an install script makes this test fail until someone decides about it."""

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _name_and_version(spec: str) -> tuple[str, str | None]:
    # "pkg", "@scope/pkg", "pkg@1.2.3" or "@scope/pkg@1.2.3"
    name, at, version = spec[1:].partition("@")
    return spec[0] + name, version if at else None


def _with_install_scripts() -> dict[str, str]:
    """Name -> version of every package in package-lock.json with an install script."""
    lock = json.loads((REPO / "package-lock.json").read_text())
    return {
        path.rpartition("node_modules/")[2]: entry["version"]
        for path, entry in lock["packages"].items()
        if entry.get("hasInstallScript")
    }


def test_allow_scripts_decides_each_package_with_an_install_script_and_only_those():
    allow_scripts = json.loads((REPO / "package.json").read_text()).get("allowScripts", {})
    decided = dict(_name_and_version(spec) for spec in allow_scripts)
    scripted = _with_install_scripts()
    assert scripted, "package-lock.json lists no install script: is it the npm v3 lockfile?"
    assert sorted(decided) == sorted(scripted)
    for name, version in decided.items():
        assert version in (None, scripted[name]), f"{name}@{version} pins another version"
    assert all(isinstance(allowed, bool) for allowed in allow_scripts.values())
