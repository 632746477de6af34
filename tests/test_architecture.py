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
    "dlib": ("train/", "evaluate/", "vision/dlib"),
    # loaded only through vision/runtime.py, which turns its telemetry off first; quantize
    # imports its quantizer after calling the same switch
    "onnxruntime": ("vision/runtime.py", "train/quantize.py"),
    "watchdog": ("ingest/watch.py",),
    "distributed": ("ingest/cluster.py",),
    "textual": ("tui/",),
    "textual_image": ("tui/",),
    "click": ("cli.py", "commands/"),
}
FRONT_ENDS = ("facetags.cli", "facetags.commands", "facetags.tui")
FRONT_END_FILES = ("cli.py", "__main__.py", "commands/", "tui/")


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
