"""``facetags train``: build the crop cache, fit the MobileNet embedder, export it to ONNX.

Needs the ``[train]`` extra (TensorFlow, tf2onnx, dlib). Everything heavy is imported inside the
command bodies so that ``facetags --help`` stays light.

The commands that reproduce ``facetags-mobilenet-v1`` (``prepare``, ``blocks``, ``export``,
``restem``, ``quantize``) are in its model card, ``models/facetags-mobilenet-v1.md``, and those of
the default, ``facetags-mobilenet-v2`` (``sources``, ``prepare``, ``blocks --teacher
mobilefacenet``, ``export``, ``quantize``), in its training log; ``train fit`` trains
an end-to-end student instead, and ``facetags train all`` runs prepare, fit and export in a row.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from facetags.commands.group import Group, log_info_to_stderr

log = logging.getLogger(__name__)

DEFAULT_DATA = "../shared/data"
DEFAULT_ID = "facetags-mobilenet-v1"
HELDOUT_FILE = "tests/data/labels/lfw_devtrain_heldout.json"


def _default_cache() -> str:
    from facetags.paths import cache_dir

    return str(cache_dir() / "train" / "crops-v1")


def _fit_options(f: Any) -> Any:
    options = [
        click.option("--cache", type=click.Path(file_okay=False), default=None, help="Crop cache folder."),
        click.option(
            "--run",
            "run_dir",
            type=click.Path(file_okay=False),
            default=".cache/train/runs/main",
            show_default=True,
            help="Run folder: checkpoints, history.json.",
        ),
        click.option("--epochs", type=int, default=40, show_default=True),
        click.option("--steps-per-epoch", type=int, default=0, help="0: one pass over the crops."),
        click.option(
            "--loss",
            type=click.Choice(["batch-hard", "batch-all"]),
            default="batch-hard",
            show_default=True,
            help="Triplet loss.",
        ),
        click.option("--margin", type=float, default=0.3, show_default=True),
        click.option("--triplet-weight", type=float, default=1.0, show_default=True),
        click.option(
            "--distill-weight",
            type=float,
            default=1.0,
            show_default=True,
            help="Weight of the dlib-teacher distillation term (0: off).",
        ),
        click.option(
            "--relational-weight",
            type=float,
            default=1.0,
            show_default=True,
            help="Similarity-matrix term inside the distillation term.",
        ),
        click.option("--p", "p", type=int, default=16, show_default=True, help="People per batch."),
        click.option("--k", "k", type=int, default=4, show_default=True, help="Crops per person."),
        click.option(
            "--u",
            "u",
            type=int,
            default=64,
            show_default=True,
            help="Extra crops per batch from any source (distillation only).",
        ),
        click.option("--lr", type=float, default=2e-3, show_default=True),
        click.option(
            "--weight-decay",
            type=float,
            default=5e-5,
            show_default=True,
            help="AdamW's decoupled weight decay (scaled by the learning rate).",
        ),
        click.option("--augment", type=float, default=1.0, show_default=True, help="Augmentation strength."),
        click.option("--arch", type=click.Choice(["v3s", "v2"]), default="v3s", show_default=True),
        click.option("--alpha", type=float, default=1.0, show_default=True),
        click.option("--head", type=click.Choice(["gap", "gdc"]), default="gap", show_default=True),
        click.option("--bn-momentum", type=float, default=0.99, show_default=True),
        click.option(
            "--val-people",
            type=int,
            default=150,
            show_default=True,
            help="LFW DevTrain people held out for per-epoch validation.",
        ),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option(
            "--val-names-file",
            default="",
            help="Hold out exactly these people (a json list, e.g. a first stage's val_people.json).",
        ),
        click.option(
            "--init-from",
            default="",
            help="Start from these weights (another run's .weights.h5): a second training stage.",
        ),
        click.option(
            "--grow",
            is_flag=True,
            help="Add shards a concurrent 'train prepare' builds, at each epoch start (recorded).",
        ),
        click.option(
            "--views",
            default="",
            help="Consistent-teaching views folder ('facetags train views'); new shards are "
            "picked up at each epoch start.",
        ),
        click.option(
            "--view-batch",
            type=int,
            default=0,
            show_default=True,
            help="Views per batch (distillation only).",
        ),
        click.option(
            "--online-views",
            type=int,
            default=0,
            show_default=True,
            help="Fresh views per batch, mixed from the training crops and described by the dlib "
            "teacher as they are made (distillation only).",
        ),
        click.option(
            "--consistent-teacher",
            is_flag=True,
            help="The dlib teacher describes each augmented crop as the student sees it, instead "
            "of the clean face's cached vector.",
        ),
        click.option(
            "--shards",
            default="",
            help="Train on exactly these cache shards ('0-76,80'); "
            "default: every shard built (recorded in history.json).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group("train", cls=Group)
def train() -> None:
    """Train the MobileNet face embedder (needs the [train] extra)."""


@train.command("prepare")
@click.option("--data", type=click.Path(file_okay=False), default=DEFAULT_DATA, show_default=True)
@click.option(
    "--sources",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="A folder of the full Pins, FairFace and UTKFace sets ('train sources'), used instead of "
    "the subsets in --data (LFW still comes from --data).",
)
@click.option("--cache", type=click.Path(file_okay=False), default=None, help="Crop cache folder.")
@click.option(
    "--teacher",
    type=click.Choice(["dlib", "none"]),
    default="dlib",
    show_default=True,
    help="dlib: each crop with the dlib teacher's vector ('train fit' needs them); none: crops and "
    "boxes only ('train blocks' describes every batch itself), several times faster.",
)
@click.option("--workers", type=int, default=2, show_default=True)
def prepare(data: str, sources: str | None, cache: str | None, teacher: str, workers: int) -> None:
    """Detect, align and describe (dlib teacher) every training image into the crop cache."""
    log_info_to_stderr()
    from facetags.train.data import build_cache, training_items

    root = Path(data)
    full = Path(sources) if sources else None
    items = training_items(root, full=full)
    build_cache(root, Path(cache or _default_cache()), items, workers=workers, full=full, teacher=teacher)


@train.command("sources")
@click.option(
    "--from",
    "sources_from",
    type=click.Path(file_okay=False, exists=True),
    multiple=True,
    required=True,
    help="A git repository holding one of the sets: a clone, or a bare or snapshot git directory "
    "(repeat for each).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder for fairface/, utkface/, pins/ and SOURCES.json (give it to 'train prepare --sources').",
)
def sources_cmd(sources_from: tuple[str, ...], out: str) -> None:
    """Check the full FairFace, UTKFace and Pins sets out of their public repositories, each at
    its pinned commit, into a folder laid out like ../shared/data; records each set's
    repository, commit, count and licence in SOURCES.json. Safe to run again: it resumes."""
    log_info_to_stderr()
    from facetags.train.sources import fetch_sources

    records = fetch_sources([Path(p) for p in sources_from], Path(out))
    for r in records:
        click.echo(f"{r['set']}: {r['count']} images from {r['repository']} @ {r['commit'][:8]}")


@train.command("views")
@click.option("--data", type=click.Path(file_okay=False), default=DEFAULT_DATA, show_default=True)
@click.option("--cache", type=click.Path(file_okay=False), default=None, help="Crop cache folder.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=".cache/train/views-v1",
    show_default=True,
    help="Views folder (views_NNNNN.npz shards).",
)
@click.option("--count", type=int, default=40000, show_default=True, help="How many views.")
@click.option(
    "--val-names-file",
    default=HELDOUT_FILE,
    show_default=True,
    help="People never drawn into a view (the runs' held-out validation people).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
def views_cmd(
    data: str, cache: str | None, out: str, count: int, val_names_file: str, seed: int, workers: int
) -> None:
    """Consistent-teaching views: mixups of two training faces with one photometric change,
    made in the student's crop and dlib's chip alike, each described by the teacher."""
    log_info_to_stderr()
    from facetags.train.views import build_views

    exclude = set(json.loads(Path(val_names_file).read_text())) if val_names_file else set()
    build_views(Path(data), Path(cache or _default_cache()), Path(out), count, exclude, seed, workers)


def _fit(**kw: Any) -> Path:
    from facetags.train.fit import FitConfig, fit
    from facetags.train.model import ModelConfig

    model = ModelConfig(
        arch=kw.pop("arch"), alpha=kw.pop("alpha"), head=kw.pop("head"), bn_momentum=kw.pop("bn_momentum")
    )
    run = kw.pop("run_dir")
    kw["cache"] = kw["cache"] or _default_cache()
    cfg = FitConfig(out=run, model=model, **kw)
    summary = fit(cfg)
    click.echo(json.dumps({"run": run, "best_epoch": summary.get("best_epoch")}))
    return Path(run)


@train.command("fit")
@_fit_options
def fit_cmd(**kw: Any) -> None:
    """Train from the crop cache; checkpoints every epoch into the run folder."""
    log_info_to_stderr()
    _fit(**kw)


def _export(
    run: Path,
    which: str,
    out: str,
    model_id: str,
    recalibrate: int,
    flip: bool = False,
    average: int = 1,
    fp16: bool = False,
) -> None:
    from facetags.train.runs import ExportPlan, export_run

    if average > 1 and not recalibrate:
        raise click.UsageError("--average needs --recalibrate-bn (averaged weights lack BN statistics)")
    plan = ExportPlan(Path(out), model_id, which, recalibrate, flip, average, fp16)
    click.echo(json.dumps(export_run(run, plan).as_dict()))


def _expansions(value: str) -> tuple[int, ...]:
    """'4,4,3,2' -> (4, 4, 3, 2): one expansion factor >= 1 per block width."""
    try:
        factors = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: comma-separated whole numbers, e.g. 4,4,3,2") from None
    if not factors or min(factors) < 1:
        raise click.BadParameter(f"{value!r}: every factor must be at least 1")
    return factors


@train.command("export")
@click.option(
    "--run", "run_dir", type=click.Path(file_okay=False), default=".cache/train/runs/main", show_default=True
)
@click.option("--which", default="best", show_default=True, help="best, last or epoch_NNN.")
@click.option("--out", type=click.Path(file_okay=False), default="models", show_default=True)
@click.option("--id", "model_id", default=DEFAULT_ID, show_default=True)
@click.option(
    "--recalibrate-bn",
    type=int,
    default=100,
    show_default=True,
    help="Re-estimate BatchNorm statistics over N training batches before export (0: off).",
)
@click.option(
    "--flip-tta/--no-flip-tta",
    default=False,
    show_default=True,
    help="Build flip test-time augmentation into the graph: the embedding of the crop plus that of "
    "its mirror image, normalised (twice the compute per face).",
)
@click.option(
    "--average",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Average the weights of this many epoch checkpoints ending at the chosen one "
    "(needs --recalibrate-bn).",
)
@click.option(
    "--fp16-weights",
    is_flag=True,
    help="Store the weights as float16 (half the file; the arithmetic stays float32).",
)
def export_cmd(
    run_dir: str,
    which: str,
    out: str,
    model_id: str,
    recalibrate_bn: int,
    flip_tta: bool,
    average: int,
    fp16_weights: bool,
) -> None:
    """Export a run's checkpoint ('train fit' or 'train blocks') to ONNX + spec json (checks
    onnxruntime against TensorFlow); prints the exported model's accuracy on the run's held-out
    validation pairs."""
    log_info_to_stderr()
    _export(Path(run_dir), which, out, model_id, recalibrate_bn, flip_tta, average, fp16_weights)


@train.command("quantize")
@click.option(
    "--onnx",
    "src",
    type=click.Path(dir_okay=False, exists=True),
    required=True,
    help="An exported float file ('train export'), its spec json beside it.",
)
@click.option("--cache", type=click.Path(file_okay=False), default=None, help="Crop cache folder.")
@click.option("--out", type=click.Path(file_okay=False), default="models", show_default=True)
@click.option("--id", "model_id", default=None, help="Model id of the new file (default: the source's).")
@click.option(
    "--calibration",
    type=click.IntRange(min=32),
    default=256,
    show_default=True,
    help="Crops (FairFace and UTKFace: no identities) whose activations set the int8 ranges.",
)
@click.option(
    "--flip-tta/--no-flip-tta",
    default=False,
    show_default=True,
    help="Build the flip pass into the quantized graph (the crop's and its mirror image's "
    "embeddings, summed and normalised).",
)
@click.option("--seed", type=int, default=0, show_default=True)
def quantize_cmd(
    src: str, cache: str | None, out: str, model_id: str | None, calibration: int, flip_tta: bool, seed: int
) -> None:
    """Quantize an exported embedder to int8 (onnxruntime's static QDQ quantizer); prints how
    closely it follows the float file on other crops (cosine)."""
    from facetags.train.data import load_cache
    from facetags.train.quantize import agreement, calibration_crops, quantize

    log_info_to_stderr()
    data = load_cache(Path(cache or _default_cache()))
    spec = quantize(Path(src), Path(out), calibration_crops(data, calibration, seed), model_id, flip_tta)
    check = agreement(Path(src), Path(out) / spec.file, calibration_crops(data, calibration, seed + 1))
    figures = {"model": spec.id, "sha256": spec.sha256, "bytes": spec.extra["file_bytes"], **check}
    click.echo(json.dumps(figures))


@train.command("restem")
@click.option(
    "--onnx",
    "src",
    type=click.Path(dir_okay=False, exists=True),
    required=True,
    help="A blockwise student's float file ('train export'), its spec json beside it.",
)
@click.option("--cache", type=click.Path(file_okay=False), default=None, help="Crop cache folder.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for the new float file.")
@click.option("--id", "model_id", default=None, help="Model id of the new file (default: the source's).")
@click.option(
    "--kernel", type=click.IntRange(min=3), default=9, show_default=True, help="The convolution's size."
)
@click.option("--width", type=click.IntRange(min=1), default=48, show_default=True, help="Its channels.")
@click.option("--pad", type=click.IntRange(min=0), default=1, show_default=True, help="Its zero padding.")
@click.option("--steps", type=click.IntRange(min=1), default=6000, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option(
    "--blocks",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also match the output of this many blocks after the stem (run frozen).",
)
@click.option(
    "--init",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Start from the stem of this restemmed file (same kernel, width, pad).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--heldout",
    type=click.Path(dir_okay=False, exists=True),
    default=HELDOUT_FILE,
    show_default=True,
    help="People whose crops are kept out (JSON list of names).",
)
def restem_cmd(
    src: str,
    cache: str | None,
    out: str,
    model_id: str | None,
    kernel: int,
    width: int,
    pad: int,
    steps: int,
    lr: float,
    blocks: int,
    init: str | None,
    seed: int,
    heldout: str,
) -> None:
    """Give a blockwise student a cheaper stem: a coarser resampling and one strided convolution
    in place of the 150x150 chip, 7x7 convolution and max-pool, taught the file's own stem
    output (facetags/train/restem.py). Writes a float file to quantize; prints its figures."""
    from facetags.train.data import load_cache
    from facetags.train.restem import StemPlan, restem

    log_info_to_stderr()
    plan = StemPlan(kernel=kernel, width=width, pad=pad, steps=steps, lr=lr, seed=seed, blocks=blocks)
    plan.check()
    data = load_cache(Path(cache or _default_cache()))
    held = set(json.loads(Path(heldout).read_text(encoding="utf-8")))
    data, _ = data.split_people(held)
    spec, summary = restem(Path(src), Path(out), data, plan, model_id, Path(init) if init else None)
    click.echo(json.dumps({"model": spec.id, "sha256": spec.sha256, **spec.extra["restem"], **summary}))  # type: ignore[dict-item]


@train.command("blocks")
@click.option("--cache", type=click.Path(file_okay=False), default=None, help="Crop cache folder.")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False),
    default=".cache/train/runs/blocks",
    show_default=True,
    help="Run folder: checkpoints, history.json, config.json.",
)
@click.option(
    "--blockwise-steps",
    type=int,
    default=1200,
    show_default=True,
    help="Phase 1: each block learns the teacher's block from the teacher's input to it.",
)
@click.option(
    "--chained-steps",
    type=int,
    default=4800,
    show_default=True,
    help="Phase 2: the blocks chained; taps and distillation terms (and the triplet term, "
    "with --triplet-weight).",
)
@click.option(
    "--steps-per-epoch", type=int, default=300, show_default=True, help="Steps between checkpoints."
)
@click.option("--p", "p", type=int, default=12, show_default=True, help="People per batch.")
@click.option("--k", "k", type=int, default=4, show_default=True, help="Crops per person.")
@click.option("--u", "u", type=int, default=16, show_default=True, help="Extra crops from any source.")
@click.option("--lr", type=float, default=2e-3, show_default=True, help="Phase 1 peak learning rate.")
@click.option("--chained-lr", type=float, default=1e-3, show_default=True, help="Phase 2 peak learning rate.")
@click.option("--tap-weight", type=float, default=1.0, show_default=True)
@click.option("--distill-weight", type=float, default=1.0, show_default=True)
@click.option("--relational-weight", type=float, default=1.0, show_default=True)
@click.option(
    "--triplet-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="Phase 2 batch-hard triplet term on the P x K part (0: off; it lowered the held-out accuracy).",
)
@click.option("--margin", type=float, default=0.3, show_default=True)
@click.option("--augment", type=float, default=1.0, show_default=True, help="Augmentation strength.")
@click.option(
    "--mix",
    type=float,
    default=0.0,
    show_default=True,
    help="Fraction of each batch blended with another face of it (the teacher describes the "
    "blend; not with --triplet-weight).",
)
@click.option(
    "--centre",
    type=float,
    default=0.5,
    show_default=True,
    help="Fraction of the teacher's mean vector taken off its vectors to make the distillation "
    "target (1: fully centred, which costs the target accuracy; see the model card).",
)
@click.option(
    "--mirror-target",
    is_flag=True,
    help="Distil the mean of the teacher's vectors for each chip and its mirror image (the "
    "teacher's own flip pass) instead of the chip's alone.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--val-names-file",
    default=HELDOUT_FILE,
    show_default=True,
    help="Hold out exactly these people (json list) for validation.",
)
@click.option("--init-from", default="", help="Start from these weights (another blocks run's .weights.h5).")
@click.option("--limit-shards", type=int, default=0, help="Only the first N cache shards (tests).")
@click.option(
    "--teacher",
    type=click.Choice(["dlib", "mobilefacenet"]),
    default="dlib",
    show_default=True,
    help="The teacher, and the plan the student is laid out on: dlib's ResNet (how "
    "facetags-mobilenet-v1 is trained) or MobileFaceNet (the opt-in mobilefacenet-v1 file, on "
    "the crop itself).",
)
@click.option(
    "--expand",
    default=None,
    callback=lambda _ctx, _param, value: None if value is None else _expansions(value),
    help="Inverted-residual expansions. dlib plan: one for the 32-, 64-, 128- and 256-channel "
    "blocks (default 4,4,3,2; 5,5,4,2 scored the same, see the model card). MobileFaceNet plan: "
    "one for the 56->28 block, the four 28x28 blocks, the 28->14 block, the six 14x14 blocks, "
    "the 14->7 block and the two 7x7 blocks (default 1,2,1,2,4,2; MobileFaceNet's own: "
    "2,2,4,2,4,2).",
)
@click.option(
    "--stem-width",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="MobileFaceNet plan: channels of the stem's 3x3 convolutions (MobileFaceNet's: 64).",
)
@click.option(
    "--dim",
    type=click.IntRange(min=2),
    default=128,
    show_default=True,
    help="The student's vector; below the teacher's (MobileFaceNet: 192), the target is the "
    "teacher's vector projected on its leading principal directions over the training crops.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --run from its last checkpoint (weights, optimizer, schedule), "
    "with the settings it was started with.",
)
@click.option(
    "--stop-at",
    type=int,
    default=0,
    metavar="STEP",
    help="Stop after the checkpoint at this step (continue later with --resume).",
)
def blocks_cmd(run_dir: str, cache: str | None, resume: bool, stop_at: int, **kw: Any) -> None:
    """Train the blockwise student: a MobileNet on its teacher's plan (dlib's ResNet, or
    MobileFaceNet with --teacher mobilefacenet), taught block by block by the teacher's own
    activations (facetags/train/blockwise.py); export it with 'train export'.

    A run stopped at any point (--stop-at, Ctrl-C, a killed process) continues from its last
    checkpoint with --resume, on the settings it was started with."""
    ctx = click.get_current_context()
    if resume:
        given = [
            name
            for name in ["cache", *kw]
            if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)
        ]
        if given:
            options = ", ".join("--" + name.replace("_", "-") for name in given)
            raise click.UsageError(
                f"--resume continues on the run's own settings (config.json); drop {options}"
            )
    log_info_to_stderr()
    from facetags.train.blockwise import BlockwiseConfig, fit_blockwise, read_config

    # fit_blockwise checks the run and --stop-at (ConfigError: one line) before any work
    if kw.get("expand") is None:
        kw["expand"] = ()  # the teacher's plan's default
    cfg = (
        read_config(Path(run_dir))
        if resume
        else BlockwiseConfig(cache=cache or _default_cache(), out=run_dir, **kw)
    )
    summary = fit_blockwise(cfg, resume=resume, stop_at=stop_at)
    keep = ("best_val_accuracy", "epochs", "parameters")
    click.echo(json.dumps({"run": run_dir, **{k: summary[k] for k in keep}}))


@train.command("all")
@click.option("--data", type=click.Path(file_okay=False), default=DEFAULT_DATA, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="models", show_default=True)
@click.option("--id", "model_id", default=DEFAULT_ID, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@_fit_options
def all_cmd(data: str, out: str, model_id: str, workers: int, **kw: Any) -> None:
    """prepare + fit + export in one go."""
    log_info_to_stderr()
    from facetags.train.data import build_cache, training_items

    kw["cache"] = kw["cache"] or _default_cache()
    root = Path(data)
    build_cache(root, Path(kw["cache"]), training_items(root), workers=workers)
    run = _fit(**kw)
    _export(run, "best", out, model_id, 100)


def _add_teacher_commands() -> None:
    from facetags.commands.train_teacher import teacher_mobilefacenet

    train.add_command(teacher_mobilefacenet)


_add_teacher_commands()
