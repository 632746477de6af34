"""Packaging and import hygiene: what `facetags --help` loads, and the built wheel in a fresh venv."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Never loaded by `facetags --help` / `--version` (design rule; they cost seconds to import).
HEAVY = ("onnxruntime", "tensorflow", "textual", "torch", "distributed")
# The core (leaves, types, decode) never imports a front end or the training framework.
CORE = (
    "facetags.config",
    "facetags.paths",
    "facetags.errors",
    "facetags.vision.types",
    "facetags.image.decode",
)
NOT_IN_CORE = ("textual", "click", "tensorflow", "onnxruntime", "torch")


def _isolated_env(tmp: Path) -> dict[str, str]:
    """An environment whose user dirs live under ``tmp`` and with no path tricks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACETAGS_", "PYTHON"))}
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        env[name] = str(tmp / name.lower())
    env["FACETAGS_LIBRARY"] = str(tmp / "library.db")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if "FACETAGS_SHARED_DATA" in os.environ:
        env["FACETAGS_SHARED_DATA"] = os.environ["FACETAGS_SHARED_DATA"]
    return env


def _run_python(code: str, tmp: Path) -> Any:
    """Run ``code`` in a fresh interpreter (isolated from the user's config and data) on this
    checkout's code (not whichever facetags is installed); the JSON of its last printed line."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp,
        env={**_isolated_env(tmp), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


HELP_AND_VERSION = """
import contextlib, io, json, sys
from facetags.cli import main
outputs = {}
for args in (["--help"], ["--version"]):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            main(args)
        except SystemExit as exc:
            assert exc.code in (0, None), (args, exc.code)
    outputs[args[0]] = buffer.getvalue()
heavy = [m for m in HEAVY if m in sys.modules]
print(json.dumps({"outputs": outputs, "heavy": heavy}))
"""


def test_help_and_version_load_no_heavy_modules(tmp_path: Path) -> None:
    code = f"HEAVY = {HEAVY!r}\n" + HELP_AND_VERSION
    result = _run_python(code, tmp_path)
    assert result["heavy"] == [], f"`facetags --help/--version` imported {result['heavy']}"
    outputs = result["outputs"]
    assert isinstance(outputs, dict)
    assert "--library" in outputs["--help"]
    # the everyday commands first, under headings; the model developers' last
    shown = outputs["--help"]
    headings = [shown.index(h) for h in ("Start here:", "People:", "Library:", "Developing the models:")]
    assert headings == sorted(headings)
    assert headings[0] < shown.index("  scan ") < headings[1] and headings[3] < shown.index("  train ")
    from facetags import __version__

    assert __version__ in outputs["--version"]


def test_core_imports_no_front_end_or_training_framework(tmp_path: Path) -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {CORE!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {NOT_IN_CORE!r} if m in sys.modules]))\n"
    )
    assert _run_python(code, tmp_path) == [], "the core imported a front end or training framework"


# --- the built wheel, installed in a fresh venv ------------------------------------------------


def _build_wheel(out: Path) -> Path:
    command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out)]
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-isolation")  # the backend is here: no index needed
    command.append(str(ROOT))
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheels = sorted(out.glob("facetags-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _detect_records(stdout: str) -> list[dict[str, object]]:
    """`detect --json` prints a JSON list, one object, or one object per line: accept all."""
    text = stdout.strip()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return parsed if isinstance(parsed, list) else [parsed]


def _see_our_dependencies(python: Path, env: dict[str, str]) -> None:
    """Let the new venv import the dependencies this interpreter has, wherever they live (the
    machine's Python, a user's venv, a venv on another venv), after its own packages: a ``.pth``
    file listing our site directories. Plain path lines: the ``.pth`` files inside them (this
    checkout's editable install) are not run, so the venv sees its own facetags only.
    (``venv --system-site-packages`` would give it the base interpreter's, not a venv's.)"""
    ours = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()
    (Path(purelib) / "_facetags_test_deps.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_wheel_installs_and_runs_in_a_fresh_venv(tmp_path: Path, t1_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = _build_wheel(dist)
    names = zipfile.ZipFile(wheel).namelist()
    for folder in ("migrations", "models"):
        shipped = [n for n in names if n.startswith(f"facetags/_data/{folder}/")]
        assert shipped, f"the wheel lacks facetags/_data/{folder}/"
    repo_sql = sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))
    wheel_sql = sorted(
        Path(n).name for n in names if n.startswith("facetags/_data/migrations/") and n.endswith(".sql")
    )
    assert wheel_sql == repo_sql
    assert "facetags/py.typed" in names  # PEP 561: type checkers read facetags' hints

    venv = tmp_path / "venv"
    env = _isolated_env(tmp_path)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=env)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    _see_our_dependencies(python, env)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--force-reinstall", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)

    # The venv's own copy is the one imported, with its shipped data beside it.
    where = run(
        str(python),
        "-c",
        "import json, facetags, facetags.paths as p, sysconfig; print(json.dumps({"
        "'package': facetags.__file__, 'migrations': str(p.migrations_dir()), "
        "'models': str(p.models_dir()), 'purelib': sysconfig.get_paths()['purelib']}))",
    )
    assert where.returncode == 0, where.stderr
    paths = json.loads(where.stdout)
    purelib = Path(paths["purelib"]).resolve()
    assert purelib.is_relative_to(venv.resolve())
    for key in ("package", "migrations", "models"):
        resolved = Path(paths[key]).resolve()
        assert resolved.is_relative_to(purelib), f"{key} resolves to {resolved}, not the venv"
        assert not resolved.is_relative_to(ROOT), f"{key} resolves into the repository"
    assert Path(paths["migrations"]).name == "migrations"

    facetags = str(bindir / "facetags")
    version = run(facetags, "--version")
    assert version.returncode == 0, version.stderr
    from facetags import __version__

    assert __version__ in version.stdout

    detect = run(facetags, "detect", "--json", str(t1_path))
    assert detect.returncode == 0, detect.stdout[-2000:] + detect.stderr[-3000:]
    records = _detect_records(detect.stdout)
    assert len(records) == 1, records
    record = records[0]
    assert Path(str(record["path"])).name == "t1.jpg"
    assert (record["width"], record["height"]) == (1280, 886)
    faces = record["faces"]
    assert isinstance(faces, list) and len(faces) == 6
    for face in faces:
        assert len(face["box"]) == 4 and face["box"][2] > 0 and face["box"][3] > 0
        assert 0.0 <= float(face["score"]) <= 1.0
        assert len(face["landmarks"]) == 5 and all(len(pt) == 2 for pt in face["landmarks"])
