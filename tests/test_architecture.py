"""The architecture holds: import-linter contracts and mypy --strict.

Each `[[tool.importlinter.contracts]]` of pyproject.toml is one test, run by
the venv's `lint-imports`, so a broken contract fails with import-linter's
own report (the chain of imports, with line numbers).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"


def _contracts() -> list[dict[str, object]]:
    with PYPROJECT.open("rb") as f:
        config = tomllib.load(f)
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


CONTRACT_IDS = [str(c["id"]) for c in _contracts()]

# A contract the current code breaks: id -> why (the lead fixes the code).
KNOWN_BROKEN: dict[str, str] = {}


def _lint_imports() -> str:
    beside = Path(sys.executable).parent / "lint-imports"
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    if found is None:
        pytest.skip("import-linter is not installed (pip install -e .[test])")
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


@pytest.mark.parametrize(
    "contract",
    [
        pytest.param(c, marks=pytest.mark.xfail(reason=KNOWN_BROKEN[c], strict=True))
        if c in KNOWN_BROKEN
        else c
        for c in CONTRACT_IDS
    ],
)
def test_import_contract(contract: str) -> None:
    result = subprocess.run(
        [_lint_imports(), "--no-logo", "--no-cache", "--contract", contract, str(PYPROJECT)],
        check=False, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"import-linter contract {contract!r} is broken:\n{report}"
    assert "1 kept, 0 broken" in report, report


def test_every_layer_is_a_root_package() -> None:
    """A new top-level package must be placed in the layers, or it goes unchecked."""
    with PYPROJECT.open("rb") as f:
        config = tomllib.load(f)
    roots = set(config["tool"]["importlinter"]["root_packages"])
    packages = {
        p.name for p in ROOT.iterdir()
        if (p / "__init__.py").exists() and p.name not in ("tests", "bench", "scripts")
    }
    assert packages <= roots, f"not under import-linter: {sorted(packages - roots)}"
    layered = {
        name.strip()
        for contract in _contracts() if contract["type"] == "layers"
        for layer in contract["layers"]  # type: ignore[attr-defined]
        for name in str(layer).split("|")
    }
    assert roots == layered, f"root packages outside the layers: {sorted(roots ^ layered)}"


# mypy --strict on the packages that are finished; the others join when done.
MYPY_PACKAGES = ["storage", "nameserver"]


def _mypy_ignores_asyncpg() -> bool:
    with PYPROJECT.open("rb") as f:
        overrides = tomllib.load(f)["tool"]["mypy"].get("overrides", [])
    return any(
        "asyncpg.*" in o.get("module", []) and o.get("ignore_missing_imports") for o in overrides
    )


# Known failures, each with its reason; the mark lifts itself once the fix lands.
MYPY_KNOWN_FAILING: dict[str, str] = {} if _mypy_ignores_asyncpg() else {
    "storage": 'storage/feed.py:104: Skipping analyzing "asyncpg": module is installed, but '
    "missing library stubs or py.typed marker [import-untyped] (fix: add \"asyncpg.*\" to "
    "the ignore_missing_imports override in pyproject.toml [tool.mypy])",
}


@pytest.mark.parametrize(
    "package",
    [
        pytest.param(p, marks=pytest.mark.xfail(reason=MYPY_KNOWN_FAILING[p], strict=True))
        if p in MYPY_KNOWN_FAILING
        else p
        for p in MYPY_PACKAGES
    ],
)
def test_mypy_strict(package: str) -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e .[test])")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(PYPROJECT), "--strict",
         "--no-error-summary", "-p", package],
        check=False, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, (
        f"mypy --strict on {package}:\n{result.stdout}{result.stderr}"
    )
