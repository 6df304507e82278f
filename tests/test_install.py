"""How the project installs: a wheel holds every file of the package tree (Lua scripts,
migrations, the demo page, email templates) and setuptools builds it without a
warning."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "celeryconfig.py", "beat_schedule.py")
PACKAGES = ("csgoflip_jobs", "workers")
BUILD = "import sys, setuptools.build_meta as backend; print(backend.build_wheel(sys.argv[1]))"


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
