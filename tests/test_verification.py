"""LFW-format pair files, verification metrics, and ``facetags eval verify`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from facetags.evaluate.verification import fold_ids, read_pairs, score_pairs


def test_read_pairs_with_and_without_header(tmp_path: Path) -> None:
    body = "Abel_Pacheco\t1\t4\nAbdullah_Gul\t13\tAbbas_Kiarostami\t1\n"
    plain, headed = tmp_path / "a.txt", tmp_path / "b.txt"
    plain.write_text(body)
    headed.write_text("1\t2\n" + body)
    for path, folds in ((plain, 0), (headed, 1)):
        pl = read_pairs(path)
        assert pl.folds == folds
        assert [p.same for p in pl.pairs] == [True, False]
        a, b = pl.paths(Path("/x"))[1]
        assert a == Path("/x/Abdullah_Gul/Abdullah_Gul_0013.jpg")
        assert b == Path("/x/Abbas_Kiarostami/Abbas_Kiarostami_0001.jpg")


def test_view2_folds_are_consecutive_blocks() -> None:
    assert list(fold_ids(6, 10, header_folds=3)) == [0, 0, 1, 1, 2, 2]
    assert list(fold_ids(4, 2)) == [0, 1, 0, 1]


def test_metrics_perfect_and_failed_pairs() -> None:
    same = np.array([True] * 50 + [False] * 50)
    scores = np.where(same, 0.8, 0.1) + np.random.default_rng(0).normal(0, 0.01, 100)
    ok = np.ones(100, bool)
    r = score_pairs(scores, same, ok)
    assert r.accuracy == 1.0 and r.auc == 1.0 and r.tar_at_far_1e_3 == 1.0
    ok[:5] = False  # five pairs whose images had no face: errors, never a crash
    r = score_pairs(scores, same, ok)
    assert r.failed_pairs == 5 and r.accuracy == 0.95


def test_eval_verify_on_real_lfw_pairs(shared_data: Path, tmp_path: Path) -> None:
    from facetags.cli import cli

    lines = (shared_data / "lfw/protocol/pairsDevTest.txt").read_text().splitlines()
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines[:10] + lines[500:510]) + "\n")
    result = CliRunner().invoke(
        cli, ["eval", "verify", "--pairs", str(pairs), "--images", str(shared_data / "lfw/images"), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert set(data) >= {"accuracy", "auc", "tar_at_far_1e-3", "pairs"}
    assert data["pairs"] == 20 and data["accuracy"] >= 0.5
