"""How the project installs: scripts/setup.sh puts exactly requirements.lock into the
.venv (the lock pins and hashes every package, pip included, names no index, and
satisfies pyproject.toml's ranges); a wheel holds every file of the package tree (Lua
scripts, migrations, the demo page, email templates) and setuptools builds it
without a warning."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "celeryconfig.py", "beat_schedule.py")
PACKAGES = ("csgoflip_jobs", "workers")
BUILD = "import sys, setuptools.build_meta as backend; print(backend.build_wheel(sys.argv[1]))"
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;\\]+)\s*(?:;(?P<marker>[^\\]+))?")
PROJECT = "csgoflip-jobs"


def lock_pins() -> dict[str, tuple[str, Marker | None]]:
    """The lock's pins: normalised name -> (version, environment marker or None)."""
    pins: dict[str, tuple[str, Marker | None]] = {}
    for line in LOCK.read_text().splitlines():
        if found := PIN.match(line):
            marker = found["marker"]
            pins[canonicalize_name(found["name"])] = (
                found["version"],
                Marker(marker.strip()) if marker else None,
            )
    return pins


def test_the_lock_pins_every_package_with_hashes_and_names_no_index() -> None:
    """A fresh machine gets the same files, from whatever index its pip is set to."""
    text = LOCK.read_text()
    entries = re.split(r"\n(?=\S)", text.split("\n", 2)[2].strip())  # after the header
    assert entries and all(PIN.match(entry) for entry in entries if not entry.startswith("#"))
    for entry in entries:
        if not entry.startswith("#"):
            assert "--hash=sha256:" in entry, entry.splitlines()[0]
    assert not re.search(r"^\s*(-i|-f|--index-url|--extra-index-url|--find-links)\b", text, re.M)
    assert "file:" not in text and "/opt/" not in text
    assert {"pip", "setuptools", "wheel", "import-linter", "mypy", "ruff"} <= set(lock_pins())


def test_the_lock_satisfies_the_ranges_of_pyproject() -> None:
    """pyproject.toml keeps ranges (for installs as a library); the lock picks in them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = lock_pins()
    for line in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{line} is not in requirements.lock: run scripts/lock.sh"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (
            f"requirements.lock has {name}=={pins[name][0]}, outside {line}: run scripts/lock.sh"
        )


def test_the_venv_holds_exactly_the_lock() -> None:
    """What scripts/setup.sh installed: every pin that applies here, at its version,
    and nothing else but the project itself."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("not run from a virtual environment (scripts/setup.sh makes .venv)")
    wanted = {
        name: version
        for name, (version, marker) in lock_pins().items()
        if marker is None or marker.evaluate()
    }
    site = [path for path in sys.path if path.startswith(sys.prefix) and "site-packages" in path]
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions(path=site)
    }
    assert installed.pop(canonicalize_name(PROJECT), None) is not None
    assert installed == wanted


def package_files() -> set[str]:
    """Every file the package directories hold but their notes for developers (*.md),
    as paths inside a wheel."""
    return {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".md"
    }


def test_the_wheel_holds_every_package_file_and_builds_without_a_warning(
    tmp_path: Path,
) -> None:
    # Built from a copy: an in-place build would leave build/ and egg-info in the tree.
    source, out = tmp_path / "source", tmp_path / "dist"
    source.mkdir()
    for name in SOURCES:
        shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    result = subprocess.run(
        [sys.executable, "-c", BUILD, str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=180,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "Package would be ignored" not in log
    assert "SetuptoolsDeprecationWarning" not in log and "SetuptoolsWarning" not in log

    wheel = out / result.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    assert package_files() - shipped == set()
    assert "csgoflip_jobs/engine/lua/lib/dead_letter.lua" in shipped
    assert "csgoflip_jobs/payments/migrations/versions/0001_payments.py" in shipped
