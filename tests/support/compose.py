"""docker-compose.yml as Compose reads it, without Docker: YAML (anchors and ``<<``
merge keys resolved), then variable interpolation by the Compose Specification's
rules, then validation with the specification's own JSON schema (check-jsonschema's
builtin ``vendor.compose-spec``).

Interpolation (compose-spec ``interpolation.md``): ``$$`` is a literal ``$``; ``$VAR``
and ``${VAR}``; ``${VAR:-default}`` / ``${VAR-default}`` (unset or empty / unset);
``${VAR:?error}`` / ``${VAR?error}``; ``${VAR:+replacement}`` / ``${VAR+replacement}``;
the word after the operator may itself hold variables and is read only when used.
Values are interpolated, keys are not.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SCHEMA = "vendor.compose-spec"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class InterpolationError(ValueError):
    """A required variable is unset (or empty, for ``:?``), or a ``${`` is not closed."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``text`` with its variables replaced from ``env``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text):
            out.append(char)
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "{":
            end = _closing_brace(text, i + 2)
            out.append(_braced(text[i + 2 : end], env))
            i = end + 1
        elif name := _NAME.match(text, i + 1):
            out.append(env.get(name.group(), ""))
            i = name.end()
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` opened just before ``start``."""
    depth = 1
    for index in range(start, len(text)):
        if text.startswith("${", index):
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise InterpolationError(f"invalid interpolation format: unclosed '${{' in {text!r}")


def _braced(body: str, env: Mapping[str, str]) -> str:
    """The value of ``${body}``."""
    name = _NAME.match(body)
    if name is None:
        raise InterpolationError(f"invalid interpolation format for ${{{body}}}")
    rest = body[name.end() :]
    value = env.get(name.group())
    if not rest:
        return value or ""
    operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if operator is None:
        raise InterpolationError(f"invalid interpolation format for ${{{body}}}")
    word = rest[len(operator) :]
    present = value is not None and (value != "" or not operator.startswith(":"))
    if operator.endswith("-"):
        return value if present and value is not None else interpolate(word, env)
    if operator.endswith("?"):
        if not present:
            raise InterpolationError(
                f"required variable {name.group()} is missing a value: {interpolate(word, env)}"
            )
        return value or ""
    return interpolate(word, env) if present else ""


def interpolated(node: Any, env: Mapping[str, str]) -> Any:
    """``node`` (parsed YAML) with every string value interpolated."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolated(item, env) for item in node]
    return node


def load(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The Compose file at ``path`` as Compose reads it with environment ``env``."""
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a mapping")
    return dict(interpolated(document, env))


def schema_errors(document: dict[str, Any], directory: Path) -> str | None:
    """check-jsonschema's report on ``document`` against the Compose Specification's
    schema; None when it is valid. ``directory`` receives the JSON it checks."""
    instance = directory / "compose.json"
    instance.write_text(json.dumps(document))
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", SCHEMA, str(instance)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return None if result.returncode == 0 else result.stdout + result.stderr
