"""The compatibility job's verdict (scripts/celery_compat/report.py), on junit files
shaped as pytest writes them: a test passing on stock and not on the platform fails
the job unless expected-failures.txt lists it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPORT = Path(__file__).resolve().parent.parent / "scripts" / "celery_compat" / "report.py"


def load_report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("celery_compat_report", REPORT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def write_run(out: Path, mode: str, cases: dict[str, str], wall_s: float) -> None:
    """junit.xml and run.json of one mode; ``cases``: test name -> outcome."""
    elements = {
        "passed": "",
        "failed": '<failure message="AssertionError: assert 1 == 2">tb</failure>',
        "skipped": '<skipped type="pytest.skip" message="Requires redis result backend."/>',
    }
    body = "".join(
        f'<testcase classname="t.integration.test_tasks.test_tasks" name="{name}">'
        f"{elements[outcome]}</testcase>"
        for name, outcome in cases.items()
    )
    (out / mode).mkdir(parents=True)
    (out / mode / "junit.xml").write_text(f"<testsuites><testsuite>{body}</testsuite></testsuites>")
    (out / mode / "run.json").write_text(json.dumps({"wall_s": wall_s}))


@pytest.mark.parametrize(
    ("platform_outcome", "listed", "status"),
    [("passed", False, 0), ("failed", False, 1), ("skipped", False, 1), ("failed", True, 0)],
)
def test_a_test_stock_passes_must_pass_on_the_platform_or_be_listed(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    platform_outcome: str,
    listed: bool,
    status: int,
) -> None:
    report = load_report()
    write_run(tmp_path, "stock", {"test_a": "passed", "test_b": "failed"}, 100.0)
    write_run(tmp_path, "platform", {"test_a": platform_outcome, "test_b": "failed"}, 125.0)
    expected = tmp_path / "expected-failures.txt"
    reason = "  # a documented platform guarantee\n" if listed else "\n"
    expected.write_text("# header\n" + ("test_tasks.py::test_tasks::test_a" + reason) * listed)

    assert report.main([str(tmp_path), "--expected", str(expected)]) == status
    printed = capsys.readouterr().out
    assert "ratio platform/stock 1.25" in printed
    assert f"{'test_tasks.py':<16} {'stock':<9}{1:>9}{1:>9}" in printed
    if platform_outcome != "passed":
        mark = "[expected]" if listed else "[NEW]"
        assert f"{mark} test_tasks.py::test_tasks::test_a  {platform_outcome}" in printed
