"""What the training tests share: aligned crops of six LFW DevTrain people, and a small
blockwise run on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from facetags.train.data import read_people


def six_people_crops(
    shared_data: Path, describe: bool, people: int = 6, photos: int = 4, at_least: int = 4
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(aligned crops, dlib's vectors of them or None, labels) for the first ``people`` DevTrain
    people with ``at_least`` photos, ``photos`` of each (6 x 4 by default), cut by facetags' own
    detector and aligner."""
    from facetags.train.data import FaceCropper, load_rgb

    teacher = None
    if describe:
        from facetags.vision.dlib_teacher import DlibTeacher

        teacher = DlibTeacher()
    listed = read_people(shared_data / "lfw/protocol/peopleDevTrain.txt")
    chosen = sorted(n for n, c in listed.items() if c >= at_least)[:people]
    cropper = FaceCropper()
    crops, vecs, labels = [], [], []
    for label, name in enumerate(chosen):
        for path in sorted((shared_data / "lfw/images" / name).glob("*.jpg"))[:photos]:
            image = load_rgb(path)
            found = cropper(image)
            assert found is not None, path
            crops.append(found[0])
            if teacher is not None:
                vecs.append(teacher.describe(image, found[1]))
            labels.append(label)
    return np.stack(crops), (np.stack(vecs) if vecs else None), np.asarray(labels, np.int32)


def tiny_blocks_run(
    crops: np.ndarray, vecs: np.ndarray | None, labels: np.ndarray, folder: Path, **settings: Any
):
    """(config, crops) of a small blockwise run in ``folder``: the 6 people of
    :func:`six_people_crops`, the last 2 held out for validation, P x K = 4 x 4, no
    augmentation."""
    from facetags.train.blockwise import BlockwiseConfig
    from facetags.train.data import CropSet, Item

    names = [f"p{v}" for v in range(6)]
    data = CropSet(crops, vecs, labels, names, [Item("x", "lfw", names[v]) for v in labels])
    held = folder / "held.json"
    held.write_text(json.dumps(names[4:]))
    cfg = BlockwiseConfig(
        cache="",
        out=str(folder / "run"),
        p=4,
        k=4,
        u=0,
        augment=0.0,
        val_names_file=str(held),
        val_pairs=20,
        **settings,
    )
    return cfg, data
