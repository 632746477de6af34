"""Issue 25: embedders come from a registry. Another package adds one through the entry-point
group ``facetags.embedders`` (a real distribution's metadata on sys.path, a fresh interpreter);
the opt-in ones that ship with facetags register the same way; a broken plugin is one warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = """
import numpy as np
from facetags.vision.registry import register

class Toy:
    dim = 4
    def __init__(self, name):
        self.model_id = name + "@0"
    def embed(self, crops):
        v = np.ones((len(crops), 4), np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

def setup():
    register("toy:", Toy, lambda name: name + "@0")
"""


def _distribution(site: Path, name: str, entry: str) -> None:
    """An installed distribution as importlib.metadata finds it: a .dist-info folder."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[facetags.embedders]\n{name} = {entry}\n")


def _run(site: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_a_plugin_embedder_is_found_through_its_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "toy_embed.py").write_text(PLUGIN)
    _distribution(site, "toy_embed", "toy_embed:setup")
    _distribution(site, "broken_embed", "no_such_module")
    done = _run(
        site,
        "import json, logging, numpy as np\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "from facetags.vision.embed import load_embedder, model_version\n"
        "from facetags.vision.registry import names\n"
        "e = load_embedder('toy:small')\n"
        "v = e.embed(np.zeros((2, 112, 112, 3), np.uint8))\n"
        "print(json.dumps({'id': e.model_id, 'version': model_version('toy:small'),"
        " 'shape': list(v.shape), 'names': names()}))\n",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["id"] == result["version"] == "toy:small@0"
    assert result["shape"] == [2, 4]
    assert {"toy:", "insightface:", "dlib-resnet-v1"} <= set(result["names"])
    (warning,) = [line for line in done.stderr.splitlines() if "plugin" in line]
    assert "'broken_embed' (no_such_module) not loaded" in warning
    assert "Traceback" not in done.stderr


def test_shipped_and_unknown_names_resolve_as_before(tmp_path: Path) -> None:
    done = _run(
        tmp_path,
        "import json\n"
        "from facetags.errors import ModelError\n"
        "from facetags.vision.embed import model_version\n"
        "from facetags.vision.specs import get_spec\n"
        "out = {'shipped': model_version('facetags-mobilenet-v1')"
        " == get_spec('facetags-mobilenet-v1').version_id}\n"
        "for name in ('no-such-model', 'insightface:no_such_pack'):\n"
        "    try:\n"
        "        model_version(name)\n"
        "    except ModelError as exc:\n"
        "        out[name] = str(exc)\n"
        "print(json.dumps(out))\n",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["shipped"] is True
    assert result["no-such-model"].startswith("unknown model 'no-such-model'")
    assert "insightface pack 'no_such_pack' not found" in result["insightface:no_such_pack"]
