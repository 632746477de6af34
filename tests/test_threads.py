"""The ``threads`` setting reaches every onnxruntime session facetags opens (read back from the
sessions themselves), and each worker process of a scan opens its sessions with its share of it:
the settings it is handed, not the environment."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from facetags.config import Settings
from facetags.ingest.parallel import PhotoPool, analyse_file, worker_settings, worker_threads
from facetags.ingest.pipeline import Pipeline
from facetags.vision.runtime import AUTO_THREADS_MAX, session_threads
from facetags.vision.specs import get_spec, verified_path

AUTO = max(1, min(AUTO_THREADS_MAX, os.cpu_count() or 1))


def _intra(session: Any) -> int:
    return int(session.get_session_options().intra_op_num_threads)


def _threads_of(pipeline: Pipeline) -> dict[str, list[int]]:
    """Intra-op threads of the pipeline's sessions: the detector's three nets, the embedder's shards."""
    detector, embedder = pipeline.detector, pipeline.embedder
    return {
        "detector": [_intra(net.session) for net in (detector._pnet, detector._rnet, detector._onet)],
        "embedder": [_intra(session) for session in embedder._sessions],
    }


@pytest.mark.parametrize(
    ("threads", "detector", "embedder"),
    [
        (1, [1, 1, 1], [1]),
        (3, [3, 3, 3], [1, 1, 1]),  # the embedder: one single-threaded session per thread
        (8, [8, 8, 8], [2, 2, 2, 2]),  # at most 4 sessions, the threads shared out
        (0, [AUTO] * 3, [1] * AUTO),  # automatic: the cores, at most 4
    ],
)
def test_the_setting_reaches_the_detector_and_embedder_sessions(
    threads: int, detector: list[int], embedder: list[int]
) -> None:
    pipeline = Pipeline(Settings(threads=threads))
    assert _threads_of(pipeline) == {"detector": detector, "embedder": embedder}


def test_the_setting_reaches_the_opt_in_embedders() -> None:
    from facetags.vision.embed import load_embedder

    pytest.importorskip("insightface")
    model = str(verified_path(get_spec("facetags-mobilenet-v1")))  # our ONNX file, run by insightface
    pack = load_embedder(f"insightface:{model}", threads=2)
    assert _intra(pack._model.session) == 2
    pytest.importorskip("dlib")
    from facetags.vision.dlib_onnx import load_net

    for threads in (1, 3):
        dlib = load_embedder("dlib-resnet-v1", threads=threads)
        assert _intra(dlib._dlib._net.session) == threads
    load_net.cache_clear()  # dlib's network is large: not kept for the rest of the run


def test_automatic_threads_and_the_workers_share() -> None:
    assert session_threads(0) == AUTO and session_threads(6) == 6
    cores = os.cpu_count() or 1
    assert worker_threads(0, 2) == max(1, cores // 2)  # automatic: this machine's cores shared out
    assert worker_threads(8, 3) == 2 and worker_threads(8, 4) == 2 and worker_threads(2, 4) == 1
    settings = Settings(threads=8, min_face=30)
    assert worker_settings(settings, 4) == Settings(threads=2, min_face=30)


def _sessions_in_worker(path: str, settings: Settings) -> dict[str, Any]:
    """Runs in a pool's worker process: analyse a photo as the pool would, then report the
    sessions the worker opened and whether it has a FACETAGS_THREADS in its environment."""
    from facetags.ingest import parallel

    analyse_file(path, settings)
    pipeline = parallel._pipeline(settings, threading.get_ident())
    return {**_threads_of(pipeline), "env": os.environ.get("FACETAGS_THREADS")}


def test_each_worker_opens_its_sessions_with_its_share(
    astronaut_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 threads for 2 worker processes: each worker's detector and embedder run 2 threads."""
    monkeypatch.delenv("FACETAGS_THREADS", raising=False)
    pool = PhotoPool(Settings(threads=4, workers=2), 2, None)
    try:
        assert pool.settings.threads == 2  # what each photo is sent with
        assert pool.submit(str(astronaut_path)).result().analysis is not None
        seen = pool._executor.submit(_sessions_in_worker, str(astronaut_path), pool.settings).result()
    finally:
        pool.close()
    assert seen == {"detector": [2, 2, 2], "embedder": [1, 1], "env": None}
