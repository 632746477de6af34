"""Training pipeline: P x K sampler, losses, a few real training steps, ONNX export parity.

TensorFlow is imported only here (and under facetags/train). Real crops come from LFW DevTrain
people in ../shared/data, cut by our own detector and aligner; skipped where the data is absent.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facetags.train.data import PKSampler, augment_batch, mix_faces, read_people, training_items
from tests.train_support import six_people_crops, tiny_blocks_run


def test_sampler_gives_p_people_times_k_crops() -> None:
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.repeat(np.arange(30), rng.integers(1, 7, 30)), -np.ones(50, int)])
    sampler = PKSampler(labels, p=8, k=4, u=16, seed=1)
    for _ in range(50):
        idx = sampler.batch()
        assert len(idx) == 8 * 4 + 16
        head = labels[idx[:32]].reshape(8, 4)
        assert (head >= 0).all()
        assert (head == head[:, :1]).all(), "each group of K is one person"
        assert len(set(head[:, 0])) == 8, "P different people"
        for row in idx[:32].reshape(8, 4):
            # every anchor has a positive that is a different crop (people with >= 2 crops only)
            assert len(set(row)) >= 2


def test_sampler_rejects_too_few_people() -> None:
    with pytest.raises(ValueError):
        PKSampler(np.array([0, 0, 1, 2, 3]), p=2, k=2)


def test_augment_keeps_shape_and_type() -> None:
    crops = np.random.default_rng(0).integers(0, 255, (6, 112, 112, 3)).astype(np.uint8)
    out = augment_batch(crops, np.random.default_rng(1))
    assert out.shape == crops.shape and out.dtype == np.uint8
    assert not np.array_equal(out, crops)


def test_mix_faces_blends_a_fraction_of_the_batch_with_other_faces() -> None:
    """--mix: round(fraction * N) faces become a blend of themselves and another face of the
    batch (weights in [0, 1]); the others and the input are left as they were."""
    x = np.repeat(np.arange(8, dtype=np.float32)[:, None, None, None] * 10, 4, axis=1)
    x = np.repeat(np.repeat(x, 4, axis=2), 3, axis=3)  # face i: every value 10 * i
    before = x.copy()
    out = mix_faces(x, np.random.default_rng(0), 0.5)
    assert np.array_equal(x, before) and out.shape == x.shape and out.dtype == x.dtype
    changed = [i for i in range(8) if not np.array_equal(out[i], x[i])]
    assert len(changed) == 4
    for i in changed:
        value = out[i].ravel()
        assert np.ptp(value) < 1e-4  # one blend for the whole image, not per pixel
        partner = [j for j in range(8) if j != i and min(10 * i, 10 * j) <= value[0] <= max(10 * i, 10 * j)]
        assert partner, (i, value[0])
    assert np.array_equal(mix_faces(x, np.random.default_rng(0), 0.0), x)
    every = mix_faces(x, np.random.default_rng(1), 1.0)
    assert not any(np.array_equal(a, b) for a, b in zip(every, x, strict=True))


def test_blocks_refuses_settings_that_cannot_train_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A blend of two people has no identity: --mix with --triplet-weight is refused in one
    line before any work, as is a --mix or --centre fraction outside 0..1; so are, with
    --teacher mobilefacenet, other than its six expansions or a dimension above its 192."""
    pytest.importorskip("tensorflow")
    from facetags.cli import main

    args = ["--library", str(tmp_path / "unused.db"), "train", "blocks", "--run", str(tmp_path / "run")]
    for extra, message in (
        (["--mix", "0.5", "--triplet-weight", "1"], "no identity for the triplet term"),
        (["--mix", "1.5"], "fraction of the batch"),
        (["--centre", "-0.5"], "fraction of the teacher's mean vector"),
        (["--teacher", "mobilefacenet", "--expand", "4,4,3,2"], "takes 6 expansions"),
        (["--teacher", "mobilefacenet", "--dim", "256"], "192 dimensions"),
    ):
        with pytest.raises(SystemExit) as info:
            main([*args, *extra])
        err = capsys.readouterr().err.strip()
        assert info.value.code == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_split_people_holds_out_exactly_those_people() -> None:
    from facetags.train.data import CropSet, Item

    who = ["ann", "bob", "", "ann", "cat", "bob", ""]  # "" = no identity (distillation only)
    names = sorted({w for w in who if w})
    data = CropSet(
        np.arange(len(who), dtype=np.uint8).reshape(-1, 1, 1, 1).repeat(3, axis=3),
        np.zeros((len(who), 128), np.float32),
        np.asarray([names.index(w) if w else -1 for w in who], np.int32),
        names,
        [Item(f"{i}.jpg", "lfw", w) for i, w in enumerate(who)],
    )
    rest, held = data.split_people({"bob", "nobody"})
    assert [i.identity for i in held.items] == ["bob", "bob"] and held.names == ["bob"]
    assert [int(c[0, 0, 0]) for c in held.crops] == [1, 5]
    assert [i.identity for i in rest.items] == ["ann", "", "ann", "cat", ""]
    assert rest.names == ["ann", "cat"] and rest.labels.tolist() == [0, -1, 0, 1, -1]


def test_training_list_never_holds_devtest_people(shared_data: Path) -> None:
    items = training_items(shared_data)
    devtest = set(read_people(shared_data / "lfw/protocol/peopleDevTest.txt"))
    names = {i.identity for i in items if i.identity}
    assert not names & devtest
    assert "Tom_Cruise" not in names and "Emma_Watson" not in names
    assert {i.source for i in items} == {"lfw", "pins", "fairface", "utkface"}


def test_losses_match_brute_force() -> None:
    tf = pytest.importorskip("tensorflow")
    from facetags.train.losses import batch_all_triplet, batch_hard_triplet

    rng = np.random.default_rng(0)
    e = rng.normal(size=(12, 8)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, -1, -1])
    d = np.linalg.norm(e[:, None] - e[None], axis=2)
    hard, every = [], []
    for a in range(10):
        pos = [p for p in range(10) if labels[p] == labels[a] and p != a]
        neg = [n for n in range(10) if labels[n] != labels[a]]
        hard.append(max(0.0, max(d[a, pos]) - min(d[a, neg]) + 0.3))
        every += [max(0.0, d[a, p] - d[a, n] + 0.3) for p in pos for n in neg]
    every_np = np.array(every)
    got_hard = float(batch_hard_triplet(tf.constant(e), tf.constant(labels), 0.3))
    got_all = float(batch_all_triplet(tf.constant(e), tf.constant(labels), 0.3))
    assert got_hard == pytest.approx(np.mean(hard), abs=1e-5)
    assert got_all == pytest.approx(every_np.sum() / (every_np > 1e-12).sum(), abs=1e-5)


@pytest.fixture(scope="module")
def lfw_crops(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aligned crops + dlib teacher vectors for 6 DevTrain people x 4 photos."""
    pytest.importorskip("dlib")
    crops, vecs, labels = six_people_crops(shared_data, describe=True)
    assert vecs is not None
    return crops, vecs, labels


@pytest.fixture(scope="module")
def trained(lfw_crops: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("tensorflow")
    from facetags.train.data import CropSet, Item
    from facetags.train.fit import FitConfig, fit
    from facetags.train.model import ModelConfig

    crops, vecs, labels = lfw_crops
    data = CropSet(
        crops, vecs, labels, [str(i) for i in range(6)], [Item("x", "lfw", str(v)) for v in labels]
    )
    out = tmp_path_factory.mktemp("run")
    cfg = FitConfig(
        cache="",
        out=str(out),
        epochs=2,
        steps_per_epoch=12,
        p=6,
        k=4,
        u=0,
        val_people=0,
        lr=2e-3,
        warmup_epochs=0.0,
        augment=0.0,
        model=ModelConfig(arch="v3s", alpha=0.75),
        seed=0,
    )
    summary = fit(cfg, data=data)
    # 24 steps leave the BatchNorm moving statistics at their initial values and the model
    # collapsed in inference mode (one vector for every face); re-estimate them as export does,
    # so the export tests below compare real, distinct embeddings
    from facetags.train.fit import recalibrate_bn

    recalibrate_bn(summary["model"], crops, batches=8, batch=24)
    return summary, out


def spread(vectors: np.ndarray) -> float:
    """How different the embeddings of different faces are (0: a collapsed model)."""
    return float(np.max(np.abs(vectors - vectors[:1])))


@pytest.mark.slow
def test_a_few_steps_on_real_crops_lower_the_loss(trained) -> None:
    summary, out = trained
    history = summary["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert (out / "last.weights.h5").is_file() and (out / "best.weights.h5").is_file()


@pytest.mark.slow
def test_onnx_export_matches_tensorflow(trained, lfw_crops, tmp_path: Path) -> None:
    from facetags.train.export import export, max_abs_diff
    from facetags.train.fit import embed
    from facetags.vision.embed import OnnxEmbedder
    from facetags.vision.specs import get_spec

    summary, _ = trained
    model = summary["model"]
    crops = lfw_crops[0]
    spec = export(model, tmp_path, "test-export")
    assert spec.layout == "NCHW" and spec.sha256
    assert spread(embed(model, crops)) > 0.05
    assert max_abs_diff(model, tmp_path / spec.file, crops) <= 1e-4
    # and through the product's runtime, preprocessing from the spec
    runtime = OnnxEmbedder(get_spec("test-export", root=tmp_path), path=tmp_path / spec.file)
    assert np.max(np.abs(runtime.embed(crops) - embed(model, crops))) <= 1e-4


@pytest.mark.slow
def test_flip_tta_export_is_mirror_invariant(trained, lfw_crops, tmp_path: Path) -> None:
    """--flip-tta builds the mirror image into the graph: a crop and its mirror embed alike."""
    from facetags.train.export import export, max_abs_diff
    from facetags.train.fit import embed
    from facetags.vision.embed import OnnxEmbedder
    from facetags.vision.specs import get_spec

    model = trained[0]["model"]
    crops = lfw_crops[0]
    spec = export(model, tmp_path, "test-flip", flip=True)
    assert spec.extra["flip_tta"] is True
    assert max_abs_diff(model, tmp_path / spec.file, crops, flip=True) <= 1e-4
    runtime = OnnxEmbedder(get_spec("test-flip", root=tmp_path), path=tmp_path / spec.file)
    plain, mirrored = runtime.embed(crops), runtime.embed(np.ascontiguousarray(crops[:, :, ::-1]))
    assert np.max(np.abs(plain - mirrored)) <= 1e-4
    assert np.allclose(np.linalg.norm(plain, axis=1), 1.0, atol=1e-4)
    single = embed(model, crops)  # without the mirror: a different vector
    assert spread(single) > 0.05 and np.max(np.abs(plain - single)) > 1e-3


@pytest.mark.slow
def test_checkpoint_averaging_is_the_mean_of_the_epochs(trained) -> None:
    from facetags.train.fit import average_checkpoints, load_trained

    _, run = trained
    model, _ = load_trained(run, "epoch_001")
    first = model.get_weights()
    model.load_weights(run / "epoch_002.weights.h5")
    second = model.get_weights()
    assert average_checkpoints(model, run, last=2, count=5) == [1, 2]  # only the epochs there are
    averaged = model.get_weights()
    assert any(np.max(np.abs(a - b)) > 1e-6 for a, b in zip(first, second, strict=True))
    for a, b, m in zip(first, second, averaged, strict=True):
        np.testing.assert_allclose(m, (a.astype(np.float64) + b) / 2, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- blockwise student


def test_blocks_expand_option_is_parsed_and_checked(tmp_path: Path) -> None:
    """'train blocks --expand' gives the student's widths; nonsense is refused before any work."""
    import click
    from click.testing import CliRunner

    from facetags.cli import cli
    from facetags.commands.train import _expansions

    assert _expansions("6,6,4,3") == (6, 6, 4, 3)
    for bad in ("4,x,3,2", "4,0,3,2", ""):
        with pytest.raises(click.BadParameter):
            _expansions(bad)
    args = ["--library", str(tmp_path / "unused.db"), "train", "blocks", "--run", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, [*args, "--expand", "4,four"])
    assert result.exit_code == 2 and "comma-separated whole numbers" in result.output
    assert not (tmp_path / "run").exists()


def test_chip_warp_is_exact_bilinear_and_zero_outside() -> None:
    """The crop -> chip resampling on a linear ramp: exact inside the crop, 0 outside."""
    pytest.importorskip("tensorflow")
    from facetags.train.blockwise import CHIP, CHIP_CENTRE, CHIP_SIDE, Warp, chips_from_crops

    ys, xs = np.mgrid[0:112, 0:112].astype(np.float32)
    crop = np.stack([xs, ys, 2 * xs - ys + 5], axis=-1)[None]
    chip = chips_from_crops(crop)[0]
    assert chip.shape == (CHIP, CHIP, 3)
    step = CHIP_SIDE / CHIP
    u = np.arange(CHIP)
    x = CHIP_CENTRE[0] + (u - CHIP / 2) * step
    y = CHIP_CENTRE[1] + (u - CHIP / 2) * step
    cols = (x >= 0) & (x <= 111)
    rows = (y >= 0) & (y <= 111)
    inside = chip[np.ix_(rows, cols)]
    np.testing.assert_allclose(inside[..., 0], np.broadcast_to(x[cols], inside.shape[:2]), atol=1e-4)
    np.testing.assert_allclose(inside[..., 1], np.broadcast_to(y[rows, None], inside.shape[:2]), atol=1e-4)
    far = y > 112  # the chip reaches below the crop: nothing there
    assert far.any() and np.all(chip[far] == 0)
    # the graph's own resampling (exported into the ONNX file) is the same
    np.testing.assert_allclose(Warp()(crop).numpy(), chip[None], atol=1e-3)


@pytest.fixture(scope="module")
def blockwise_run(lfw_crops, tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("tensorflow")
    from facetags.train.blockwise import fit_blockwise

    cfg, data = tiny_blocks_run(
        *lfw_crops,
        tmp_path_factory.mktemp("blocks"),
        blockwise_steps=24,
        chained_steps=8,
        steps_per_epoch=8,
        lr=3e-3,
        triplet_weight=1.0,  # the whole phase-2 loss, triplet term included
        centre=1.0,  # the widest-spread target: a collapsed export stands out most (spread below)
    )
    return fit_blockwise(cfg, data=data), Path(cfg.out)


@pytest.mark.slow
def test_blockwise_student_follows_the_teacher_plan_and_learns(blockwise_run, lfw_crops) -> None:
    """Each block's output has the shape of dlib's at the same place, the taps loss falls in
    phase 1, and phase 2 adds the triplet term."""
    from facetags.train.blockwise import Teacher, chips_from_crops

    summary, run = blockwise_run
    student, history = summary["student"], summary["history"]
    teacher = Teacher()
    chips = chips_from_crops((lfw_crops[0][:4].astype(np.float32) - 127.5) / 127.5)
    _, taps = teacher(chips)
    acts, emb = student.chained(chips, training=False)
    assert [tuple(a.shape) for a in acts] == [t.shape for t in taps]
    assert len(taps) == 15 and emb.shape == (4, 128)
    assert history[2]["taps"] < history[0]["taps"]  # phase 1: 3 epochs of 8 steps
    assert "triplet" in history[3] and "triplet" not in history[2]
    assert summary["parameters"] < 1_600_000
    for name in ("best", "last", "epoch_004"):
        assert (run / f"{name}.weights.h5").is_file()


@pytest.mark.slow
def test_blockwise_export_matches_tensorflow_and_reloads(blockwise_run, lfw_crops, tmp_path: Path) -> None:
    """The exported file (the chip resampling inside) takes the 112 crop like every embedder and
    gives TensorFlow's vectors; a run's checkpoint reloads into the same student."""
    from facetags.train.blockwise import load_blockwise
    from facetags.train.export import export, max_abs_diff
    from facetags.train.fit import embed, recalibrate_bn
    from facetags.vision.embed import OnnxEmbedder
    from facetags.vision.specs import get_spec

    summary, run = blockwise_run
    crops = lfw_crops[0]
    student, _ = load_blockwise(run, "last")
    np.testing.assert_allclose(embed(student.model, crops), embed(summary["student"].model, crops), atol=1e-5)
    recalibrate_bn(student.model, crops, batches=4, batch=24)
    spec = export(student.model, tmp_path, "test-blocks")
    assert max_abs_diff(student.model, tmp_path / spec.file, crops) <= 1e-4
    runtime = OnnxEmbedder(get_spec("test-blocks", root=tmp_path), path=tmp_path / spec.file)
    got = runtime.embed(crops)
    assert spread(got) > 0.05
    np.testing.assert_allclose(got, embed(student.model, crops), atol=1e-4)
    # float16 storage: about half the file, the same vectors to float16's precision
    half = export(student.model, tmp_path / "half", "test-blocks", fp16_weights=True)
    assert half.extra["fp16_weights"] is True
    assert (tmp_path / "half" / half.file).stat().st_size < 0.6 * (tmp_path / spec.file).stat().st_size
    runtime16 = OnnxEmbedder(
        get_spec("test-blocks", root=tmp_path / "half"), path=tmp_path / "half" / half.file
    )
    got16 = runtime16.embed(crops)
    assert np.max(np.abs(got16 - got)) <= 5e-3
    assert np.min(np.sum(got16 * got, axis=1)) > 0.9999


@pytest.mark.slow
def test_quantized_export_follows_the_float_file(blockwise_run, lfw_crops, tmp_path: Path) -> None:
    """'train quantize': int8 weights (a smaller file than even the float16 one), the float
    file's vectors to within quantization (its flip pass, with --flip-tta), mirror invariance,
    and a spec that names the file and the float file it came from."""
    import onnx
    from onnx import TensorProto

    from facetags.train.export import export
    from facetags.train.fit import recalibrate_bn
    from facetags.train.quantize import agreement, quantize
    from facetags.vision.embed import OnnxEmbedder
    from facetags.vision.specs import get_spec, sha256_file

    summary, _ = blockwise_run
    model, crops = summary["student"].model, lfw_crops[0]
    recalibrate_bn(model, crops, batches=4, batch=24)
    source = export(model, tmp_path / "float", "test-q", fp16_weights=True)
    src = tmp_path / "float" / source.file
    with pytest.raises(ValueError, match="another folder"):
        quantize(src, tmp_path / "float", crops)
    spec = quantize(src, tmp_path / "int8", crops[:16], flip=True)
    path = tmp_path / "int8" / spec.file
    assert spec.sha256 == sha256_file(path) and spec.extra["int8"]["float_sha256"] == source.sha256
    assert spec.extra["flip_tta"] is True and spec.extra["fp16_weights"] is False
    assert path.stat().st_size < 0.75 * src.stat().st_size
    assert any(init.data_type == TensorProto.INT8 for init in onnx.load(str(path)).graph.initializer)
    close = agreement(src, path, crops[16:])  # crops it was not calibrated on
    assert close["min_cosine"] > 0.98, close
    runtime = OnnxEmbedder(get_spec("test-q", root=tmp_path / "int8"), path=path)
    got = runtime.embed(crops)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5) and spread(got) > 0.05
    assert np.max(np.abs(got - runtime.embed(np.ascontiguousarray(crops[:, :, ::-1])))) <= 1e-5


def test_restem_grid_lands_on_the_old_stems_centres_and_is_mirror_symmetric() -> None:
    """The new stem's resampling: window i of the stride-3 convolution is centred on the crop
    point of the old stem's output i (rows exactly, columns within a fifth of a pixel), and the
    columns are symmetric about the crop's centre, so the mirrored crop's grid is the grid
    mirrored (the flip pass stays the crop's mirror image)."""
    pytest.importorskip("tensorflow")
    from facetags.errors import ConfigError
    from facetags.train.blockwise import CHIP, CHIP_CENTRE, CHIP_SIDE
    from facetags.train.restem import StemPlan, grid_matrices

    for plan in (StemPlan(), StemPlan(kernel=7, pad=0), StemPlan(kernel=8, pad=2)):
        rows, cols = grid_matrices(plan)
        assert rows.shape == cols.shape == (plan.grid, 112)
        assert (plan.grid + 2 * plan.pad - plan.kernel) // 3 + 1 == 35
        np.testing.assert_allclose(cols, cols[::-1, ::-1], atol=1e-6)
        scale = CHIP_SIDE / CHIP
        i = np.arange(35)
        centre = 3 * i - plan.pad + (plan.kernel - 1) // 2  # integer centres for odd kernels
        if plan.kernel % 2 == 0:
            continue
        for m, axis_centre, tol in ((rows, CHIP_CENTRE[1], 1e-4), (cols, CHIP_CENTRE[0], 0.25)):
            inside = np.isclose(m[centre].sum(axis=1), 1.0)
            where = (m[centre] @ np.arange(112.0))[inside]
            old = (axis_centre + (4 * i + 5 - CHIP / 2) * scale)[inside]
            assert inside.sum() >= 30
            np.testing.assert_allclose(where, old, atol=tol)
    with pytest.raises(ConfigError):
        StemPlan(kernel=2).check()


@pytest.mark.slow
def test_restem_replaces_the_stem_and_the_file_runs(blockwise_run, lfw_crops, tmp_path: Path) -> None:
    """'train restem' on a tiny student: the error to the old stem falls, the written file has
    the new resampling and a stride-3 convolution where the chip, 7x7 convolution and max-pool
    were, its stem equals the Keras one, it embeds; --blocks' frozen blocks compute what the
    file does, --init starts from a restemmed file's stem; and quantized with the flip pass a
    crop and its mirror image get the same vector."""
    import onnx

    from facetags.train.data import CropSet, Item
    from facetags.train.export import export
    from facetags.train.fit import recalibrate_bn
    from facetags.train.quantize import quantize
    from facetags.train.restem import StemPlan, restem
    from facetags.vision.embed import OnnxEmbedder
    from facetags.vision.specs import get_spec, sha256_file

    summary, _ = blockwise_run
    model, crops = summary["student"].model, lfw_crops[0]
    recalibrate_bn(model, crops, batches=4, batch=24)
    source = export(model, tmp_path / "float", "test-r", fp16_weights=True)
    src = tmp_path / "float" / source.file
    items = [Item(f"x/{i}.jpg", "fairface", None) for i in range(len(crops))]
    data = CropSet(crops, lfw_crops[1], np.full(len(crops), -1, np.int32), [], items)
    plan = StemPlan(kernel=7, width=16, pad=0, steps=60, batch=8, lr=3e-3, validation=8)
    with pytest.raises(ValueError, match="another folder"):
        restem(src, tmp_path / "float", data, plan)
    spec, report = restem(src, tmp_path / "new", data, plan)
    history = report["history"]
    assert history[-1]["val"] < 0.8 * history[0]["val"], history
    path = tmp_path / "new" / spec.file
    assert spec.sha256 == sha256_file(path) and spec.extra["restem"]["from_sha256"] == source.sha256
    assert spec.extra["restem"]["onnx_max_abs_diff"] <= 1e-4
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    assert "MaxPool" not in ops
    convs = [n for n in graph.node if n.name == "restem/conv"]
    assert len(convs) == 1 and [a.ints for a in convs[0].attribute if a.name == "strides"] == [[3, 3]]
    new = OnnxEmbedder(get_spec("test-r", root=tmp_path / "new"), path=path).embed(crops)
    assert new.shape == (len(crops), 128) and np.allclose(np.linalg.norm(new, axis=1), 1.0, atol=1e-5)
    # the frozen blocks of --blocks compute what the file computes
    import tensorflow as tf

    from facetags.train.quantize import float32_weights
    from facetags.train.restem import _Targets, frozen_blocks
    from facetags.train.stemgraph import find_stem, following_blocks

    float_model = float32_weights(onnx.load(str(src)))
    old = find_stem(float_model)
    nodes = following_blocks(float_model, old.output, 2)
    _, stem_out, block_out = _Targets(float_model, old, source, plan, nodes[-1].output[0])(crops[:6])
    frozen = frozen_blocks(float_model, old.output, nodes)(tf.constant(stem_out)).numpy()
    assert np.max(np.abs(frozen - block_out)) <= 1e-4
    deeper = replace(plan, blocks=2, steps=10)
    spec2, report2 = restem(src, tmp_path / "deeper", data, deeper, init=path)
    assert spec2.extra["restem"]["init_sha256"] == spec.sha256
    assert report2["history"][0]["val"] == pytest.approx(history[-1]["val"], rel=0.05)  # it starts from there
    assert "val_blocks" in report2["history"][-1]
    q = quantize(path, tmp_path / "int8", crops[:16], flip=True)
    runtime = OnnxEmbedder(get_spec("test-r", root=tmp_path / "int8"), path=tmp_path / "int8" / q.file)
    got = runtime.embed(crops)
    mirrored = runtime.embed(np.ascontiguousarray(crops[:, :, ::-1]))
    assert np.min(np.sum(got * mirrored, axis=1)) > 0.9999


def test_spec_writer_takes_name_hash_and_size_from_the_file(tmp_path: Path) -> None:
    """The one spec writer: the file's name, sha256 and size come from the file itself, the
    json lies beside it, and a source's keys keep their order (file_bytes refreshed in place)."""
    from facetags.train.export import spec_of
    from facetags.train.specfile import write_spec
    from facetags.vision.specs import ModelSpec, sha256_file

    path = tmp_path / "m.onnx"
    path.write_bytes(b"not really onnx" * 10)
    extra: dict[str, object] = {"a": 1, "file_bytes": 3, "z": {"b": 2}}
    spec = write_spec(path, spec_of("m-id", nchw=True), extra)
    assert (spec.file, spec.sha256, spec.layout) == ("m.onnx", sha256_file(path), "NCHW")
    assert list(spec.extra) == ["a", "file_bytes", "z"] and spec.extra["file_bytes"] == 150
    assert ModelSpec.from_json(tmp_path / "m.json") == spec


def test_checkpoint_writer_keeps_every_epoch_the_last_and_the_best(tmp_path: Path) -> None:
    """'train fit' and 'train blocks' checkpoint through one writer: epoch_NNN, last, best only
    on an improvement, and history.json replaced whole after the weights (no temporary left)."""
    tf = pytest.importorskip("tensorflow")
    from facetags.train.checkpoints import read_history, save_checkpoint, weights_file

    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
    first = model.get_weights()
    save_checkpoint(model, tmp_path, 1, True, {"history": [{"epoch": 1}]})
    model.set_weights([w + 1 for w in first])
    save_checkpoint(model, tmp_path, 2, False, {"history": [{"epoch": 1}, {"epoch": 2}]})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "best.weights.h5",
        "epoch_001.weights.h5",
        "epoch_002.weights.h5",
        "history.json",
        "last.weights.h5",
    ]
    assert read_history(tmp_path) == {"history": [{"epoch": 1}, {"epoch": 2}]}
    for which, expected in (("best", first), ("epoch_001", first), ("last", [w + 1 for w in first])):
        model.load_weights(weights_file(tmp_path, which))
        for got, want in zip(model.get_weights(), expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_calibration_crops_come_from_the_sources_without_identities() -> None:
    from facetags.train.data import CropSet, Item
    from facetags.train.quantize import calibration_crops

    sources = ["lfw", "fairface", "pins", "utkface"] * 10
    unlabelled = ("fairface", "utkface")
    items = [Item(f"{s}/{i}.jpg", s, None if s in unlabelled else f"p{i}") for i, s in enumerate(sources)]
    crops = np.arange(len(items), dtype=np.uint8)[:, None, None, None] * np.ones((1, 112, 112, 3), np.uint8)
    no_labels = np.full(len(items), -1, np.int32)
    data = CropSet(crops, np.zeros((len(items), 128), np.float32), no_labels, [], items)
    picked = calibration_crops(data, 8, seed=0)
    assert len(picked) == 8
    assert {sources[int(c[0, 0, 0])] for c in picked} == set(unlabelled)
    lfw_only = data.subset(np.asarray([s == "lfw" for s in sources]))
    with pytest.raises(ValueError, match="fairface"):
        calibration_crops(lfw_only, 8)


@pytest.mark.slow
def test_blockwise_checkpoint_averaging(blockwise_run) -> None:
    """'train export --average N' on a blocks run: the mean of the N epoch checkpoints ending at
    the chosen one (best: the first epoch with the best validation accuracy)."""
    from facetags.train.blockwise import best_epoch, load_blockwise
    from facetags.train.fit import average_checkpoints
    from facetags.train.runs import epoch_of

    summary, run = blockwise_run
    history = summary["history"]
    accs = [row["val_accuracy"] for row in history]
    assert accs[best_epoch(history) - 1] == max(accs) == summary["best_val_accuracy"]
    assert max(accs) not in accs[: best_epoch(history) - 1]  # the first such epoch
    assert epoch_of("last", history, 1) == len(history) == 4
    assert epoch_of("epoch_002", history, 1) == 2 and epoch_of("best", history, 3) == 3
    student, _ = load_blockwise(run, "epoch_003")
    third = student.model.get_weights()
    student.model.load_weights(run / "epoch_004.weights.h5")
    fourth = student.model.get_weights()
    assert average_checkpoints(student.model, run, last=4, count=2) == [3, 4]
    assert any(np.max(np.abs(a - b)) > 1e-6 for a, b in zip(third, fourth, strict=True))
    for a, b, m in zip(third, fourth, student.model.get_weights(), strict=True):
        np.testing.assert_allclose(m, (a.astype(np.float64) + b) / 2, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_train_export_writes_a_blocks_runs_checkpoint_and_its_record(
    blockwise_run, lfw_crops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """'train export' on a blocks run whose crops are a real cache: one JSON line on stdout (id,
    hash, onnxruntime vs TensorFlow, held-out accuracy) and a spec that records the run, the
    checkpoint, the averaged epochs and the BatchNorm re-estimation."""
    import shutil

    from facetags.cli import main
    from facetags.vision.specs import ModelSpec, sha256_file

    _, source = blockwise_run
    run, cache = tmp_path / "run", tmp_path / "cache"
    shutil.copytree(source, run)
    crops, vecs, labels = lfw_crops
    cache.mkdir()
    items = [[f"lfw/p{v}/{i}.jpg", "lfw", f"p{v}"] for i, v in enumerate(labels)]
    (cache / "manifest.json").write_text(json.dumps({"items": items, "crop": 112}))
    np.savez(cache / "shard_00000.npz", crops=crops, teacher=vecs, index=np.arange(len(labels)))
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "cache": str(cache)}))
    out = tmp_path / "models"
    args = ["--library", str(tmp_path / "unused.db"), "train", "export", "--run", str(run), "--out", str(out)]
    main([*args, "--id", "test-run", "--which", "epoch_003", "--average", "2", "--recalibrate-bn", "4"])
    printed = json.loads(capsys.readouterr().out.strip())
    spec = ModelSpec.from_json(out / "test-run.json")
    assert printed["model"] == spec.id == "test-run" and printed["sha256"] == sha256_file(out / spec.file)
    assert printed["max_abs_diff_vs_tf"] <= 1e-4 and 0.0 <= printed["val_acc"] <= 1.0
    assert spec.extra["checkpoint"] == "epoch_003" and spec.extra["averaged_epochs"] == [2, 3]
    assert spec.extra["bn_recalibrated_batches"] == 4 and spec.extra["epochs"] == 4
    assert spec.extra["training"]["expand"] == list(config["expand"])  # type: ignore[index]
    assert "cache" not in spec.extra["training"] and "MobileNetV2" in str(spec.extra["architecture"])
    assert int(spec.extra["parameters"]) > 0  # type: ignore[call-overload]


@pytest.mark.slow
def test_blockwise_run_resumes_where_it_stopped(lfw_crops, tmp_path: Path) -> None:
    """A run stopped at a checkpoint continues with --resume: the same schedule (the optimizers'
    step counters and moments come back), the history kept, new batches after the stop."""
    pytest.importorskip("tensorflow")
    from facetags.errors import ConfigError
    from facetags.train.blockwise import STATE_FILE, BlockwiseConfig, fit_blockwise

    cfg, data = tiny_blocks_run(*lfw_crops, tmp_path, blockwise_steps=4, chained_steps=8, steps_per_epoch=4)
    run = Path(cfg.out)
    with pytest.raises(ConfigError, match="checkpoint step"):
        fit_blockwise(cfg, data=data, stop_at=6)
    first = fit_blockwise(cfg, data=data, stop_at=8)  # phase 1 and one epoch of phase 2
    assert [row["step"] for row in first["history"]] == [4, 8]
    stopped = first["student"].model.get_weights()
    with np.load(run / STATE_FILE) as state:
        assert int(state["step"]) == 8 and int(state["opt0_0"]) == 4 and int(state["opt1_0"]) == 4
        moments = [state[key] for key in state.files if key.startswith("opt1_") and key != "opt1_0"]
    assert any(np.abs(m).max() > 0 for m in moments)  # phase 2's Adam moments are saved

    other = BlockwiseConfig(**{**cfg.__dict__, "lr": 1e-2})
    with pytest.raises(ConfigError, match="other settings"):
        fit_blockwise(other, data=data, resume=True)

    with pytest.raises(ConfigError, match="already at step 8"):
        fit_blockwise(cfg, data=data, resume=True, stop_at=4)
    resumed = fit_blockwise(cfg, data=data, resume=True)
    assert [row["step"] for row in resumed["history"]] == [4, 8, 12]
    assert resumed["history"][:2] == first["history"]
    assert json.loads((run / "history.json").read_text()) == resumed["history"]
    with np.load(run / STATE_FILE) as state:
        # phase 1's counter came back (no phase-1 step after the stop); phase 2's went on
        assert int(state["step"]) == 12 and int(state["opt0_0"]) == 4 and int(state["opt1_0"]) == 8
    after = resumed["student"].model.get_weights()
    assert any(np.abs(a - b).max() > 1e-6 for a, b in zip(stopped, after, strict=True))
    # nothing left to do: resuming a finished run changes nothing
    again = fit_blockwise(cfg, data=data, resume=True)
    assert again["history"] == resumed["history"]


def test_blockwise_feeder_blends_faces_and_the_teacher_describes_the_blends(lfw_crops) -> None:
    """With mix, the batch holds blends the teacher is asked about as they are: its vectors
    and taps are those of the blended chips, not of the faces they were made from."""
    pytest.importorskip("tensorflow")
    from facetags.train.blockwise import Feeder, Target, Teacher
    from facetags.train.data import centre

    crops, _, labels = lfw_crops
    teacher = Teacher()
    zero = np.zeros(128, np.float32)
    batches = []
    for mix in (0.0, 1.0):
        feeder = Feeder(crops, PKSampler(labels, 2, 2, 0, 3), teacher, Target(zero), 0.0, 3, mix)
        try:
            batches.append(feeder.get())
        finally:
            feeder.close()
    (plain, plain_vec, _, plain_labels), (mixed, mixed_vec, mixed_taps, mixed_labels) = batches
    assert np.array_equal(plain_labels, mixed_labels)  # the same draw of faces
    # both feeders drew the same faces with the same flips (augmentation 0 otherwise); every
    # mixed chip is a blend, unlike any plain one
    assert all(np.abs(mixed[i] - plain[i]).max() > 0.05 for i in range(len(plain)))
    vec, taps = teacher(mixed)
    assert np.allclose(mixed_vec, centre(vec, zero), atol=1e-5)
    assert all(np.allclose(a, b, atol=1e-4) for a, b in zip(mixed_taps, taps, strict=True))
    assert not np.allclose(mixed_vec, plain_vec, atol=1e-2)


def test_blockwise_feeder_mirror_target_is_the_teachers_flip_pass(lfw_crops) -> None:
    """--mirror-target: the target vector is the mean of the teacher's vectors for the chip and
    its mirror image (then centred), while the chips and taps stay the chip's own."""
    pytest.importorskip("tensorflow")
    from facetags.train.blockwise import Feeder, Target, Teacher
    from facetags.train.data import centre

    crops, _, labels = lfw_crops
    teacher = Teacher()
    mean = np.full(128, 0.05, np.float32)
    batches = []
    for mirror in (False, True):
        feeder = Feeder(crops, PKSampler(labels, 2, 2, 0, 3), teacher, Target(mean), 1.0, 3, mirror=mirror)
        try:
            batches.append(feeder.get())
        finally:
            feeder.close()
    (chips, plain_vec, plain_taps, _), (same_chips, mirror_vec, mirror_taps, _) = batches
    assert np.array_equal(chips, same_chips)  # the same seeded draw and augmentation
    assert all(np.array_equal(a, b) for a, b in zip(plain_taps, mirror_taps, strict=True))
    own, _ = teacher(chips)
    flipped, _ = teacher(np.ascontiguousarray(chips[:, :, ::-1]))
    assert np.allclose(plain_vec, centre(own, mean), atol=1e-5)
    assert np.allclose(mirror_vec, centre((own + flipped) / 2, mean), atol=1e-4)
    assert not np.allclose(mirror_vec, plain_vec, atol=1e-3)


def test_train_blocks_resume_takes_the_runs_own_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--resume refuses training options (the run's config.json holds them), a folder that is
    not a run and a run without saved state, in one line and before any work."""
    from facetags.cli import main

    args = ["--library", str(tmp_path / "unused.db"), "train", "blocks", "--resume"]
    runs = [
        (["--run", str(tmp_path), "--lr", "0.01"], 2, "drop --lr"),
        (["--run", str(tmp_path / "none")], 1, "not a 'train blocks' run"),
    ]
    older = tmp_path / "older"  # a run from before state.npz: its config alone
    older.mkdir()
    (older / "config.json").write_text(json.dumps({"cache": "", "out": str(older), "expand": [4, 4, 3, 2]}))
    runs.append((["--run", str(older)], 1, "nothing to resume"))
    for extra, code, message in runs:
        with pytest.raises(SystemExit) as info:
            main([*args, *extra])
        err = capsys.readouterr().err.strip()
        assert info.value.code == code and message in err and "Traceback" not in err, err
    assert not (tmp_path / "none").exists()
    # a run started before --centre existed was taught fully centred vectors: it resumes so
    pytest.importorskip("tensorflow")
    from facetags.train.blockwise import BlockwiseConfig, read_config

    assert BlockwiseConfig(cache="", out="").centre == 0.5
    assert read_config(older).centre == 1.0


@pytest.mark.parametrize("person", ["Alycia_Dabnem_Carey", "Tom_Cruise"])
def test_training_refuses_crops_of_people_held_out_of_training(
    lfw_crops, tmp_path: Path, person: str
) -> None:
    """A cache built before 12 Pins people were held out (or any list with a Pins person of LFW
    DevTest) holds people later figures call unseen: both trainers stop before any step."""
    from facetags.errors import ConfigError
    from facetags.train.blockwise import fit_blockwise
    from facetags.train.data import Item
    from facetags.train.fit import FitConfig, fit

    cfg, data = tiny_blocks_run(*lfw_crops, tmp_path)
    data.names[0] = person
    data.items = [Item("x", "pins", data.names[v]) for v in data.labels]
    with pytest.raises(ConfigError, match=person):
        fit_blockwise(cfg, data)
    assert not (tmp_path / "run" / "state.npz").exists()
    with pytest.raises(ConfigError, match=person):
        fit(FitConfig(cache="", out=str(tmp_path / "fit"), val_people=0), data)
