"""The full training sets: ``facetags train sources`` and ``train prepare --sources``.

The public repositories are stood in for by a git repository made here, laid out as each of the
three is at its pinned commit (``fair_face/train``, ``data/UTKFace/unlabeled``,
``datasets/pins_<Name>``), holding real photos from ``../shared/data``; a later commit changes it,
so the checkout must come from the pinned commit and not from the newest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facetags.train.data import (
    DEVTEST_IN_PINS,
    PINS_HELDOUT,
    PINS_HELDOUT_SEED,
    build_cache,
    load_cache,
    read_people,
    training_items,
)
from facetags.train.sources import SETS, SOURCES_FILE, SourceError, fetch_sources, pins_person
from tests.train_support import six_people_crops


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def put(repo: Path, path: str, source: Path | bytes) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, Path):
        shutil.copyfile(source, target)
    else:
        target.write_bytes(source)


#: people in the stand-in Pins folder: an ordinary one (lower case in the repository, as 16 are),
#: an LFW DevTest person and a held-out one
PINS_PEOPLE = ("amber heard", "Tom Cruise", "alycia dabnem carey")


@pytest.fixture(scope="module")
def stand_in(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """(repository clone, pinned commit, the sets pinned to it, {output path: source photo})."""
    repo = tmp_path_factory.mktemp("sources") / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    expected: dict[str, Path] = {}
    fair = sorted((shared_data / "fairface").glob("*.jpg"))[:3]
    # train and val both hold a 1.jpg (as upstream): the output names must keep both
    for part, number, photo in (("train", 1, fair[0]), ("train", 2, fair[1]), ("val", 1, fair[2])):
        put(repo, f"fair_face/{part}/{number}.jpg", photo)
        expected[f"fairface/{part}_{number}.jpg"] = photo
    put(repo, "fairface_label_train.csv", b"file,age,gender,race,service_test\n"
        b"train/1.jpg,03-Sep,Male,East Asian,TRUE\ntrain/2.jpg,20-29,Female,Indian,FALSE\n")  # fmt: skip
    put(
        repo,
        "fairface_label_val.csv",
        b"file,age,gender,race,service_test\nval/1.jpg,Oct-19,Male,Black,FALSE\n",
    )
    utk = sorted((shared_data / "utkface").glob("*.jpg"))[:2]
    put(repo, f"data/UTKFace/unlabeled/{utk[0].name}.chip.jpg", utk[0])
    expected[f"utkface/{utk[0].name}"] = utk[0]
    stem = utk[1].name.removesuffix(".jpg")
    put(repo, f"data/UTKFace/unlabeled/{stem} .jpg.chip.jpg", utk[1])  # upstream has one such name
    expected[f"utkface/{utk[1].name}"] = utk[1]
    put(repo, "data/UTKFace/labeled/readme.txt", b"not part of the set\n")
    for raw in PINS_PEOPLE:
        person = pins_person(raw)
        photos = sorted((shared_data / "pins" / person).glob("*.jpg"))[:3]
        for i, photo in enumerate(photos):
            put(repo, f"datasets/pins_{raw}/{raw}{i}_{i + 7}.jpg", photo)
            expected[f"pins/{person}/{person}_{i}_{i + 7}.jpg"] = photo
    put(repo, "datasets/edu.PNG", b"\x89PNG not a face")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the set")
    pinned = git(repo, "rev-parse", "HEAD")
    # a later commit drops photos and adds one, as the newest Pins commit does upstream
    git(repo, "rm", "-q", "fair_face/train/2.jpg", f"datasets/pins_{PINS_PEOPLE[0]}/{PINS_PEOPLE[0]}0_7.jpg")
    put(repo, "fair_face/train/3.jpg", fair[1])
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "later")
    counts = {"fairface": 3, "utkface": 2, "pins": 3 * len(PINS_PEOPLE)}
    sets = tuple(replace(s, commit=pinned, count=counts[s.set]) for s in SETS)
    return repo, pinned, sets, expected


def test_sources_are_checked_out_at_the_pinned_commit_in_the_shared_layout(stand_in, tmp_path: Path) -> None:
    repo, pinned, sets, expected = stand_in
    out = tmp_path / "sources"
    records = fetch_sources([repo], out, sets)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted([*expected, "fairface/labels.csv", SOURCES_FILE])  # nothing from the later commit
    for name, photo in expected.items():
        assert (out / name).read_bytes() == photo.read_bytes(), name
    assert (out / "fairface/labels.csv").read_text().splitlines() == [
        "file,age,gender,race",
        "train_1.jpg,3-9,Male,East Asian",  # the spreadsheet's dates turned back into age groups
        "train_2.jpg,20-29,Female,Indian",
        "val_1.jpg,10-19,Male,Black",
    ]
    assert json.loads((out / SOURCES_FILE).read_text()) == records
    by_set = {r["set"]: r for r in records}
    assert sorted(by_set) == ["fairface", "pins", "utkface"]
    for s in SETS:
        r = by_set[s.set]
        assert r["commit"] == pinned and len(r["commit"]) == 40
        assert (r["repository"], r["licence"], r["paths"]) == (s.repository, s.licence, list(s.paths))
    assert [by_set[k]["count"] for k in ("fairface", "utkface", "pins")] == [3, 2, 9]
    # read through git's object store only: the clone's index and work tree are as they were
    assert git(repo, "status", "--porcelain") == "" and git(repo, "rev-parse", "HEAD") != pinned


def test_sources_resume_and_refuse_what_does_not_match(stand_in, tmp_path: Path) -> None:
    repo, pinned, sets, expected = stand_in
    out = tmp_path / "sources"
    fetch_sources([repo], out, sets)
    name = sorted(n for n in expected if n.startswith("pins/"))[0]
    (out / name).write_bytes(b"half a photo")  # as a killed writer never leaves one, but a user might
    (out / sorted(n for n in expected if n.startswith("utkface/"))[0]).unlink()
    fetch_sources([repo], out, sets)
    for n, photo in expected.items():
        assert (out / n).read_bytes() == photo.read_bytes(), n

    # a count other than the pinned one is an error, not a smaller set
    with pytest.raises(SourceError, match=r"holds 3 images .* not the 4 expected"):
        fetch_sources([repo], tmp_path / "other", (replace(sets[0], count=4),))
    # stray files in a set's folder change its count: refused
    (out / "utkface" / "stray.jpg").write_bytes(b"x")
    with pytest.raises(SourceError, match="3 images after the checkout, not 2"):
        fetch_sources([repo], out, sets)
    (out / "utkface" / "stray.jpg").unlink()
    # a folder holding a set from another commit is not mixed with this one
    later = git(repo, "rev-parse", "HEAD")
    with pytest.raises(SourceError, match=f"holds fairface from .* @ {pinned[:8]}, not .* @ {later[:8]}"):
        fetch_sources([repo], out, (replace(sets[0], commit=later, count=3),))


def test_sources_refuse_a_repository_without_the_pinned_commit(
    stand_in, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stand-in lacks the real pinned commits: one line naming each 'git clone' to run."""
    from facetags.cli import main

    repo, *_ = stand_in
    with pytest.raises(SystemExit) as info:
        main(["train", "sources", "--from", str(repo), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 1 and "\n" not in err and "Traceback" not in err, err
    for s in SETS:
        assert f"git clone https://github.com/{s.repository}" in err and s.commit[:8] in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SourceError, match="not a git repository"):
        fetch_sources([tmp_path], tmp_path / "out", SETS)


def test_prepare_takes_the_full_sets_from_the_sources_folder_only(
    stand_in, shared_data: Path, tmp_path: Path
) -> None:
    """LFW from the shared data, Pins, FairFace and UTKFace from the sources folder (never also
    the subsets); LFW DevTest people and the held-out Pins people stay out."""
    repo, _, sets, expected = stand_in
    out = tmp_path / "sources"
    fetch_sources([repo], out, sets)
    items = training_items(shared_data, full=out)
    by_source: dict[str, list[str]] = {}
    for item in items:
        by_source.setdefault(item.source, []).append(item.path)
    assert sorted(by_source["fairface"]) == sorted(n for n in expected if n.startswith("fairface/"))
    assert sorted(by_source["utkface"]) == sorted(n for n in expected if n.startswith("utkface/"))
    # of the three Pins people only the ordinary one: Tom Cruise is in LFW DevTest, Alycia
    # Dabnem Carey held out
    assert "Tom_Cruise" in DEVTEST_IN_PINS and "Alycia_Dabnem_Carey" in PINS_HELDOUT
    assert {i.identity for i in items if i.source == "pins"} == {"Amber_Heard"}
    assert all((out / i.path).is_file() for i in items if i.source != "lfw")
    assert all((shared_data / i.path).is_file() for i in items[:50] if i.source == "lfw")
    devtest = set(read_people(shared_data / "lfw/protocol/peopleDevTest.txt"))
    assert not {i.identity for i in items if i.identity} & (devtest | PINS_HELDOUT)

    # a folder without SOURCES.json (or the subsets folder itself) is refused
    with pytest.raises(SourceError, match="run 'facetags train sources"):
        training_items(shared_data, full=tmp_path)


def test_crops_only_cache_records_its_sources_and_fit_refuses_it(
    stand_in, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from facetags.errors import ConfigError

    repo, _, sets, _ = stand_in
    out = tmp_path / "sources"
    records = fetch_sources([repo], out, sets)
    every = training_items(shared_data, full=out)
    items = [i for i in every if i.source != "lfw"] + [i for i in every if i.source == "lfw"][:3]
    cache = tmp_path / "crops"
    build_cache(shared_data, cache, items, workers=1, full=out, teacher="none")
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["teacher"] == "none"
    assert manifest["sources"] == {"folder": str(out.resolve()), "sets": records}
    with np.load(cache / "shard_00000.npz") as z:
        assert sorted(z.files) == ["boxes", "crops", "index"]
    data = load_cache(cache)
    assert data.teacher is None and data.crops.shape[1:] == (112, 112, 3)
    assert len(data) >= len(items) - 2  # a face in (nearly) every real photo, from both folders
    assert {i.source for i in data.items} == {"lfw", "pins", "fairface", "utkface"}
    rest, held = data.split_people({"Amber_Heard"})
    assert rest.teacher is None and held.names == ["Amber_Heard"]
    with pytest.raises(ConfigError, match=r"--teacher none .* 'train fit' needs"):
        data.vectors("'train fit'")
    # resuming with the other teacher, or with another sources folder, is refused
    with pytest.raises(ConfigError, match="built with --teacher none, not dlib"):
        build_cache(shared_data, cache, items, workers=1, full=out, teacher="dlib")
    with pytest.raises(ConfigError, match="different image list"):
        build_cache(shared_data, cache, items[1:], workers=1, full=out, teacher="none")

    pytest.importorskip("tensorflow")
    from facetags.cli import main

    with pytest.raises(SystemExit) as info:
        main(["train", "fit", "--cache", str(cache), "--run", str(tmp_path / "run"), "--val-people", "0"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 1 and "'train fit' needs the dlib teacher's vectors" in err, err
    assert "Traceback" not in err


def test_blockwise_takes_the_teachers_mean_from_the_crops_when_the_cache_has_no_vectors(
    shared_data: Path,
) -> None:
    """A crops-only cache: the teacher describes a sample of the training crops for its mean
    vector; it points where the mean of the cached vectors (dlib on its own chips) points."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("dlib")
    from facetags.train.blockwise import Teacher, teacher_mean
    from facetags.train.data import CropSet, Item

    crops, vectors, _ = six_people_crops(shared_data, describe=True, people=8, photos=2, at_least=3)
    assert vectors is not None
    items = [Item("x", "lfw", None)] * len(crops)
    labels = np.full(len(crops), -1, np.int32)
    cached = CropSet(crops, vectors.astype(np.float32), labels, [], items)
    bare = CropSet(crops, None, labels, [], items)
    teacher = Teacher()
    from_cache = teacher_mean(cached, teacher, 0)
    from_crops = teacher_mean(bare, teacher, 0, sample=len(crops))
    assert np.allclose(from_cache, cached.teacher.mean(axis=0))  # type: ignore[union-attr]
    cos = float(from_cache @ from_crops / np.linalg.norm(from_cache) / np.linalg.norm(from_crops))
    assert cos > 0.99, cos
    assert not np.allclose(from_crops, teacher_mean(bare, teacher, 1, sample=4))  # a sample


def test_pins_held_out_people_are_the_seeded_draw_and_never_trained_on(shared_data: Path) -> None:
    pins = sorted(p.name for p in (shared_data / "pins").iterdir() if p.is_dir())
    in_lfw = {p.name for p in (shared_data / "lfw/images").iterdir()}
    candidates = sorted(set(pins) - in_lfw)
    assert len(candidates) == 90
    draw = np.random.default_rng(PINS_HELDOUT_SEED).choice(candidates, 12, replace=False)
    assert set(draw.tolist()) == PINS_HELDOUT
    names = {i.identity for i in training_items(shared_data) if i.source == "pins"}
    assert not names & PINS_HELDOUT and not names & DEVTEST_IN_PINS
    assert len(names) == len(pins) - len(DEVTEST_IN_PINS) - len(PINS_HELDOUT)


@pytest.mark.slow
def test_blocks_train_from_a_crops_only_cache(shared_data: Path, tmp_path: Path) -> None:
    """'train blocks' reads a --teacher none cache from disk and trains: the teacher describes
    every batch (and the crops for its mean vector), so no stored vector is needed."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("dlib")
    from facetags.train.blockwise import BlockwiseConfig, fit_blockwise

    devtrain = read_people(shared_data / "lfw/protocol/peopleDevTrain.txt")
    people = sorted(n for n, c in devtrain.items() if c >= 4)[:6]
    items = [i for i in training_items(shared_data, sources=("lfw",)) if i.identity in people]
    cache = tmp_path / "crops"
    build_cache(shared_data, cache, items, workers=1, teacher="none")
    held = tmp_path / "held.json"
    held.write_text(json.dumps(people[4:]))
    cfg = BlockwiseConfig(
        cache=str(cache),
        out=str(tmp_path / "run"),
        blockwise_steps=2,
        chained_steps=2,
        steps_per_epoch=2,
        p=4,
        k=2,
        u=0,
        augment=0.0,
        val_names_file=str(held),
        val_pairs=10,
    )
    summary = fit_blockwise(cfg)
    assert summary["epochs"] == 2 and 0.0 <= summary["best_val_accuracy"] <= 1.0
    assert (tmp_path / "run" / "best.weights.h5").is_file()
