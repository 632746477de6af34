"""Issue 25: ``facetags version --json`` reports the package, the schema a library gets, each
shipped model's versioned id and file hash, and the runtime's versions (the real command, in a
fresh interpreter)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import facetags

ROOT = Path(__file__).resolve().parents[1]


def _facetags(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "facetags", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_version_json_names_what_facetags_is_made_of() -> None:
    done = _facetags("version", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["facetags"] == facetags.__version__
    migrations = sorted(int(p.name[:4]) for p in (ROOT / "migrations").glob("*.sql"))
    assert report["schema"] == migrations[-1]
    shipped = sorted(p.stem for p in (ROOT / "models").glob("*.json"))
    assert [m["id"] for m in report["models"]] == shipped
    for model in report["models"]:
        digest = hashlib.sha256((ROOT / "models" / model["file"]).read_bytes()).hexdigest()
        assert model["sha256"] == digest
        assert model["version_id"] == f"{model['id']}@{digest[:12]}"
    assert report["python"] == platform.python_version()
    for name in ("onnxruntime", "numpy", "Pillow", "textual"):
        assert report["packages"][name] == version(name)


def test_version_text_is_one_line_a_part() -> None:
    done = _facetags("version")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["facetags", facetags.__version__]
    assert any(line.startswith("model") and "sha256" in line for line in lines)
    assert done.stderr == ""


def test_version_loads_no_model_runtime() -> None:
    code = (
        "import sys\n"
        "from facetags.cli import main\n"
        "try:\n"
        "    main(['version', '--json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('onnxruntime', 'textual', 'tensorflow')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "[]"
