"""Compare the stock and platform runs of Celery's integration suite.

Reads ``<out>/stock/junit.xml`` and ``<out>/platform/junit.xml`` (written by run.py)
and prints, per module of the suite, how many tests passed, failed, were skipped,
xfailed or errored in each mode; each mode's wall time and the ratio platform/stock;
then every test that passed on stock but not on the platform, marked whether
expected-failures.txt lists it. A test only one mode ran (another ``-k`` or module
list) is not compared.

Exit status 1 when a test passed on stock and did not pass on the platform (failed,
errored, skipped or xfailed) without being listed: that is a new incompatibility. A
listed test that passes on the platform again is reported so its line can be removed,
without failing the job.

expected-failures.txt: one ``module::test_id  # reason`` per line, the test's pytest
node id under t/integration/, e.g. ``test_tasks.py::test_tasks::test_retry  # why``;
``#`` starts a comment; blank lines are ignored.

    python scripts/celery_compat/report.py var/celery-compat --expected FILE
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

OUTCOMES = ("passed", "failed", "skipped", "xfailed", "error")
MODES = ("stock", "platform")
SUITE_PACKAGE = "t.integration."
"""What junit's classname of every test of the suite starts with."""


@dataclass(frozen=True)
class Result:
    """One test's outcome in one mode, with the first line of why when it did not pass."""

    outcome: str
    message: str = ""


def node_id(testcase: ET.Element) -> str:
    """``test_tasks.py::test_tasks::test_x[param]`` from junit's classname and name.

    junit writes pytest's node id ``t/integration/test_tasks.py::test_tasks::test_x``
    as classname ``t.integration.test_tasks.test_tasks`` and name ``test_x``.
    """
    classname = testcase.get("classname", "").removeprefix(SUITE_PACKAGE)
    module, *classes = classname.split(".")
    return "::".join([f"{module}.py", *classes, testcase.get("name", "")])


def outcome_of(testcase: ET.Element) -> Result:
    """The outcome junit records: a failure wins over a teardown error on the same test
    (it is the test's own verdict), an xfail is a skip of type ``pytest.xfail``."""
    for tag, outcome in (("failure", "failed"), ("error", "error")):
        element = testcase.find(tag)
        if element is not None:
            return Result(outcome, first_line(element))
    skipped = testcase.find("skipped")
    if skipped is not None:
        xfail = skipped.get("type") == "pytest.xfail"
        return Result("xfailed" if xfail else "skipped", first_line(skipped))
    return Result("passed")


def first_line(element: ET.Element) -> str:
    """The message of a failure/error/skip, on one line and short enough to list."""
    text = (element.get("message") or element.text or "").strip()
    line = " ".join(text.split("\n", 1)[0].split())
    return line if len(line) <= 200 else line[:197] + "..."


def read_junit(path: Path) -> dict[str, Result]:
    """Every test of one run by node id; empty when the run left no junit file."""
    if not path.is_file():
        return {}
    root = ET.parse(path).getroot()
    return {node_id(case): outcome_of(case) for case in root.iter("testcase")}


def read_expected(path: Path) -> dict[str, str]:
    """expected-failures.txt as {node id: reason}."""
    expected: dict[str, str] = {}
    if not path.is_file():
        return expected
    for line in path.read_text().splitlines():
        test_id, _, reason = line.partition("#")
        if test_id.strip():
            expected[test_id.strip()] = reason.strip()
    return expected


def wall_seconds(run_dir: Path) -> float | None:
    """The wall time run.py measured for one mode (pytest's start to its exit)."""
    try:
        return float(json.loads((run_dir / "run.json").read_text())["wall_s"])
    except (OSError, ValueError, KeyError):
        return None


def module_of(test_id: str) -> str:
    """``test_tasks.py`` of ``test_tasks.py::...``."""
    return test_id.split("::", 1)[0]


def counts_table(results: dict[str, dict[str, Result]]) -> list[str]:
    """Lines of the per-module, per-mode counts."""
    modules = sorted({module_of(t) for by_id in results.values() for t in by_id})
    header = f"{'module':<16} {'mode':<9}" + "".join(f"{o:>9}" for o in OUTCOMES) + f"{'total':>9}"
    lines = [header, "-" * len(header)]
    for module in modules:
        for mode in MODES:
            counts = Counter(
                r.outcome for t, r in results.get(mode, {}).items() if module_of(t) == module
            )
            if not counts:
                lines.append(f"{module:<16} {mode:<9}   (not run)")
                continue
            cells = "".join(f"{counts[o]:>9}" for o in OUTCOMES)
            lines.append(f"{module:<16} {mode:<9}{cells}{sum(counts.values()):>9}")
    return lines


def main(argv: Sequence[str]) -> int:
    """Print the comparison; 1 when a test passing on stock does not pass on the platform
    and is not listed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", type=Path, help="the directory run.py wrote (var/celery-compat)")
    parser.add_argument("--expected", type=Path, required=True, help="expected-failures.txt")
    args = parser.parse_args(argv)

    results = {mode: read_junit(args.out / mode / "junit.xml") for mode in MODES}
    expected = read_expected(args.expected)
    print()
    print("\n".join(counts_table(results)))
    print()
    walls = {mode: wall_seconds(args.out / mode) for mode in MODES}
    for mode in MODES:
        wall = walls[mode]
        print(f"wall time {mode:<9} {'-' if wall is None else f'{wall:.1f} s'}")
    stock_wall, platform_wall = walls["stock"], walls["platform"]
    if stock_wall and platform_wall:
        print(f"ratio platform/stock {platform_wall / stock_wall:.2f}")

    stock, platform = results["stock"], results["platform"]
    if not stock or not platform:
        missing = [mode for mode in MODES if not results[mode]]
        print(f"\nno comparison: no results of {', '.join(missing)}")
        return 0
    new_failures = 0
    regressions = [
        (test_id, platform[test_id])
        for test_id, result in stock.items()
        if result.outcome == "passed"
        and test_id in platform
        and platform[test_id].outcome != "passed"
    ]
    print(f"\npassed on stock, not on the platform: {len(regressions)}")
    for test_id, result in sorted(regressions):
        # A skip or an xfail on the platform of a test stock passes is no pass either.
        listed = test_id in expected
        new_failures += not listed
        mark = "expected" if listed else "NEW"
        print(f"  [{mark}] {test_id}  {result.outcome}: {result.message}")
    fixed = sorted(t for t in expected if platform.get(t, Result("")).outcome == "passed")
    if fixed:
        print("\nlisted in expected-failures.txt but passing on the platform now (remove):")
        for test_id in fixed:
            print(f"  {test_id}")
    if new_failures:
        print(f"\n{new_failures} test(s) pass on stock and not on the platform, unlisted")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
