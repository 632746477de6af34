"""The dependency rules of docs/architecture.md, and facetags' promise never to use the network."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "facetags"

# third-party package -> the only places (package-relative prefixes) allowed to import it
CONFINED = {
    "tensorflow": ("train/",),
    "tf2onnx": ("train/",),
    # 0.7 s to import; the networks built at run time are written by vision/onnxgraph.py instead
    "onnx": ("train/",),
    "dlib": ("train/", "evaluate/", "vision/dlib"),
    # loaded only through vision/runtime.py, which turns its telemetry off first; quantize
    # imports its quantizer after calling the same switch
    "onnxruntime": ("vision/runtime.py", "train/quantize.py"),
    "watchdog": ("watch.py",),
    "distributed": ("ingest/cluster.py",),
    "textual": ("tui/",),
    "textual_image": ("tui/",),
    "click": ("cli.py", "commands/"),
}
FRONT_ENDS = ("facetags.cli", "facetags.commands", "facetags.tui", "facetags.watch")
FRONT_END_FILES = ("cli.py", "__main__.py", "commands/", "tui/", "watch.py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules() -> list[tuple[str, set[str]]]:
    return [(path.relative_to(PKG).as_posix(), _imports(path)) for path in sorted(PKG.rglob("*.py"))]


# --- facetags' own layers: who may import whom (module-level and function-level imports alike) ---

LEAVES = (
    "facetags.errors",
    "facetags.config",
    "facetags.paths",
    "facetags.text",
    "facetags.names",
    "facetags.orientation",
    "facetags.image",  # decode: photos to pixels, for every stage
)
RECORDS = ("facetags.db.records",)
# what a front end may import besides itself: the facade, the record types, settings, errors and
# the text helpers (names: the one name key and validation)
FRONT_END_API = (
    "facetags.library",
    *RECORDS,
    "facetags.config",
    "facetags.errors",
    "facetags.text",
    "facetags.names",
)

# module prefix (the longest that matches wins) -> facetags modules it may import (prefixes);
# every module may import its own package
ALLOWED: dict[str, tuple[str, ...]] = {
    **{leaf: LEAVES for leaf in LEAVES},
    "facetags.db": LEAVES,
    "facetags.vision": (*LEAVES, "facetags.db"),
    "facetags.xmp": (*LEAVES, "facetags.db"),
    "facetags.people": (*LEAVES, "facetags.db"),
    "facetags.ingest": (*LEAVES, "facetags.db", "facetags.vision"),
    "facetags.library": (
        *LEAVES,
        "facetags.db",
        "facetags.vision",
        "facetags.ingest",
        "facetags.people",
        "facetags.xmp",
        "facetags.versions",
        "facetags.library_decisions",
        "facetags.library_xmp",
    ),
    # the facade's parts, mixed into Library: the core below it, never the facade itself
    "facetags.library_decisions": (*LEAVES, "facetags.db", "facetags.ingest"),
    "facetags.library_xmp": (*LEAVES, "facetags.db", "facetags.xmp"),
    "facetags.versions": (*LEAVES, "facetags.db", "facetags.vision"),
    "facetags.evaluate": (
        *LEAVES,
        "facetags.db",
        "facetags.vision",
        "facetags.ingest",
        "facetags.people",
        "facetags.library",
    ),
    "facetags.train": (*LEAVES, "facetags.vision", "facetags.ingest"),
    "facetags": (),
    "facetags.examples": (),
    "facetags.__main__": ("facetags.cli",),
    "facetags.cli": (*FRONT_END_API, "facetags.commands"),
    "facetags.commands": (*FRONT_END_API, "facetags.commands"),
    "facetags.commands.tui": (*FRONT_END_API, "facetags.commands", "facetags.tui"),
    "facetags.commands.watch": (*FRONT_END_API, "facetags.commands", "facetags.watch"),
    "facetags.commands.train": (*FRONT_END_API, "facetags.paths", "facetags.commands", "facetags.train"),
    "facetags.commands.train_teacher": (
        *FRONT_END_API,
        "facetags.paths",
        "facetags.commands",
        "facetags.train",
    ),
    "facetags.commands.evaluate": (*FRONT_END_API, "facetags.commands", "facetags.evaluate"),
    "facetags.commands.eval_clusters": (*FRONT_END_API, "facetags.commands", "facetags.evaluate"),
    "facetags.tui": (*FRONT_END_API, "facetags.tui"),
    # the watch daemon; which files are photos is scan's rule, and the watcher must agree with it
    "facetags.watch": (*FRONT_END_API, "facetags.ingest.scan"),
}

# Known debts: (importer, imported) pairs the rules above do not allow yet, each with its reason.
# Paying one off means deleting its line here; a new break fails the test.
EXCEPTIONS: dict[tuple[str, str], str] = {}

# Known import cycles (sorted module lists) not broken yet, each with its reason.
CYCLE_EXCEPTIONS: dict[tuple[str, ...], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (for the type checker only; never run)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _own_imports(module: str, *, runtime_only: bool = False) -> set[str]:
    """The facetags modules ``module`` imports anywhere in its file (top level, functions, methods),
    relative imports resolved; ``runtime_only`` leaves out ``if TYPE_CHECKING:`` imports."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _type_checking_nodes(tree) if runtime_only else set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            found.update(submodules or [base])
    return {name for name in found if name == "facetags" or name.startswith("facetags.")}


def _allowed(module: str) -> tuple[str, ...]:
    rules = [prefix for prefix in ALLOWED if module == prefix or module.startswith(prefix + ".")]
    assert rules, f"{module} has no row in the allowed-imports table"
    return ALLOWED[max(rules, key=len)]


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_every_import_follows_the_layers() -> None:
    """The table above, checked on every facetags import, inside functions too."""
    wrong = []
    for module in MODULES:
        allowed = (*_allowed(module), _package(module))
        for name in sorted(_own_imports(module)):
            if name == "facetags" or _within(name, allowed) or (module, name) in EXCEPTIONS:
                continue
            wrong.append(f"{module} imports {name}")
    assert not wrong, "imports the layers do not allow:\n" + "\n".join(wrong)


def test_the_exceptions_are_still_needed() -> None:
    """An exception whose import is gone is deleted from the table, so the debt list stays true."""
    stale = [f"{a} -> {b}" for a, b in EXCEPTIONS if b not in _own_imports(a)]
    assert not stale, "paid off; delete from EXCEPTIONS:\n" + "\n".join(stale)


def _cycles() -> list[tuple[str, ...]]:
    """Strongly connected components of the runtime import graph with more than one module."""
    graph = {
        m: sorted(n for n in _own_imports(m, runtime_only=True) if n in MODULES and n != m) for m in MODULES
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[tuple[str, ...]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(tuple(sorted(component)))

    for module in graph:
        if module not in index:
            visit(module)
    return out


def test_no_import_cycle() -> None:
    """No cycle in facetags' import graph (function-level imports included; imports under
    ``if TYPE_CHECKING:`` never run and are left out)."""
    found = _cycles()
    new = [" <-> ".join(c) for c in found if c not in CYCLE_EXCEPTIONS]
    assert not new, "import cycles:\n" + "\n".join(new)
    stale = [" <-> ".join(c) for c in CYCLE_EXCEPTIONS if c not in found]
    assert not stale, "cycles gone; delete from CYCLE_EXCEPTIONS:\n" + "\n".join(stale)


def test_heavy_packages_stay_in_their_corner() -> None:
    wrong = []
    for rel, imported in _modules():
        for name in imported:
            top = name.split(".")[0]
            allowed = CONFINED.get(top)
            if allowed is not None and not rel.startswith(allowed):
                wrong.append(f"{rel} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_core_never_imports_a_front_end() -> None:
    wrong = []
    for rel, imported in _modules():
        if rel.startswith(FRONT_END_FILES):
            continue
        wrong += [f"{rel} imports {n}" for n in imported if n.startswith(FRONT_ENDS)]
    assert not wrong, "\n".join(wrong)


def test_importing_the_core_loads_no_front_end_or_training_stack() -> None:
    code = (
        "import sys, json\n"
        "import facetags.library, facetags.ingest.scan, facetags.ingest.pipeline\n"
        "import facetags.people.cluster, facetags.xmp.write, facetags.xmp.read\n"
        "import facetags.vision.detect, facetags.vision.embed, facetags.evaluate.clustering\n"
        "print(json.dumps(sorted(m for m in ('textual', 'click', 'tensorflow', 'torch', 'dlib')"
        " if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.slow
def test_a_scan_opens_no_network_connection(tmp_path: Path, t1_path: Path) -> None:
    """Index a real photo with every model loaded while an audit hook forbids sockets."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "t1.jpg").write_bytes(t1_path.read_bytes())
    code = (
        "import sys\n"
        "def hook(event, args):\n"
        "    if event in ('socket.connect', 'socket.bind', 'socket.getaddrinfo', 'urllib.Request'):\n"
        "        raise RuntimeError('network use: %s %r' % (event, args))\n"
        "sys.addaudithook(hook)\n"
        "from facetags.cli import main\n"
        f"main(['--library', {str(tmp_path / 'lib.db')!r}, 'scan', '--json', {str(photos)!r}])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "network use" not in out.stderr
    report = json.loads(out.stdout)
    assert report["faces"] >= 6, report
