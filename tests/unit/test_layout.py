"""What ships stays apart from the dev tooling: no shipped module imports it, and the production
image's dependency set (requirements.txt, resolved) holds no dev or test tool but every library
the shipped code imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devtools.settings import PROJECT_ROOT

SHIPPED = ["quacknet", "api", "dags", "plugins"]
DEV_ONLY_CODE = {"devtools", "tests", "bench"}
DEV_ONLY_DISTS = {"chdb", "pytest", "hypothesis", "schemathesis", "playwright", "ruff", "pytest-timeout"}
FIRST_PARTY = {"quacknet", "api"}


def shipped_files() -> list[Path]:
    return sorted(f for d in SHIPPED for f in (PROJECT_ROOT / d).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_shipped_module_imports_the_dev_tooling():
    offenders = {str(f.relative_to(PROJECT_ROOT)): sorted(m for m in imported_modules(f) if m.split(".")[0] in DEV_ONLY_CODE)
                 for f in shipped_files()}
    assert {f: m for f, m in offenders.items() if m} == {}


def test_every_shipped_module_imports_with_the_dev_tooling_unreachable():
    """Not only the import statements: nothing reaches devtools or a test tool indirectly either."""
    modules = sorted({".".join(f.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
                      for f in (PROJECT_ROOT / "quacknet").rglob("*.py") if f.name != "__main__.py"} | {"api"})
    blocked = sorted(DEV_ONLY_CODE | {"chdb", "pytest", "hypothesis", "schemathesis", "playwright"})
    script = textwrap.dedent(f"""
        import importlib, importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ImportError("shipped code reached " + name)
        sys.meta_path.insert(0, Block())
        for name in {modules!r}:
            importlib.import_module(name)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def _requirements(path: Path) -> list[Requirement]:
    reqs = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            reqs.append(Requirement(line))
    return reqs


def runtime_closure() -> set[str]:
    """Every distribution `pip install -r requirements.txt` brings in, walked through the installed
    metadata (the venv holds the pinned tree), with environment markers evaluated, no extras."""
    env = default_environment()
    seen: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in _requirements(PROJECT_ROOT / "requirements.txt")]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for raw in metadata.requires(name) or []:
            sub = Requirement(raw)
            if sub.marker is None or any(sub.marker.evaluate({**env, "extra": e}) for e in (extras or {""})):
                todo.append((sub, frozenset(sub.extras)))
    return {k.split("[")[0] for k in seen}


@pytest.fixture(scope="module")
def closure() -> set[str]:
    return runtime_closure()


def test_the_production_dependency_set_holds_no_dev_or_test_tool(closure):
    assert "apache-airflow" in closure and "clickhouse-connect" in closure  # the walk works
    assert closure & {canonicalize_name(d) for d in DEV_ONLY_DISTS} == set()


def test_the_image_installs_the_runtime_requirements_only():
    dockerfile = (PROJECT_ROOT / "docker" / "Dockerfile").read_text()
    installs = re.findall(r"^RUN pip install[^\n]*", dockerfile, re.MULTILINE)
    copies = " ".join(re.findall(r"^COPY[^\n]*", dockerfile, re.MULTILINE)).split()
    assert any("-r /opt/quacknet/requirements.txt" in line for line in installs)
    assert not [line for line in installs if "requirements-dev" in line]
    assert not {"devtools", "tests", "bench", "requirements-dev.txt", "."} & set(copies)


def test_every_library_the_shipped_code_imports_is_a_runtime_requirement(closure):
    """requirements.txt is complete: a shipped import of something only the dev venv has would
    break the image, not the tests."""
    owners = metadata.packages_distributions()
    stdlib = sys.stdlib_module_names
    missing = {}
    for f in shipped_files():
        for module in imported_modules(f):
            top = module.split(".")[0]
            if top in stdlib or top in FIRST_PARTY or top == "__future__":
                continue
            dists = {canonicalize_name(d) for d in owners.get(top, [])}
            if not dists & closure:
                missing.setdefault(module, []).append(str(f.relative_to(PROJECT_ROOT)))
    assert missing == {}


LAYERS = {
    "errors": 1, "settings": 1, "logs": 1, "retry": 1, "runtime": 1, "params": 1, "units": 1,
    "scan": 2,
    "kafka": 3, "topics": 3, "warehouse": 3, "spool": 3, "apikeys": 3,
    "pipeline": 4, "delivery": 4, "coverage": 4,
    "loader": 5, "replay": 5, "ops": 5,
    "airflow": 6, "cli": 6, "__main__": 6,
}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else 0


def test_each_module_imports_only_its_own_layer_or_below():
    """docs/ARCHITECTURE.md's layering: errors/settings < scan < clients < pipeline < drivers < glue."""
    upward = []
    for f in sorted((PROJECT_ROOT / "quacknet").rglob("*.py")):
        name = ".".join(f.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
        if name == "quacknet":
            continue
        for imported in imported_modules(f):
            if imported.startswith("quacknet.") and _layer(imported) > _layer(name):
                upward.append(f"{name} -> {imported}")
    assert upward == []


def test_the_api_and_the_dags_use_only_their_layers():
    api = {m for f in (PROJECT_ROOT / "api").rglob("*.py") for m in imported_modules(f) if m.startswith("quacknet.")}
    assert {m for m in api if _layer(m) > 4} == set()
    for d in ("dags", "plugins"):
        used = {m for f in (PROJECT_ROOT / d).rglob("*.py") for m in imported_modules(f) if m.startswith("quacknet.")}
        assert {m for m in used if not m.startswith("quacknet.airflow")} == set(), d
