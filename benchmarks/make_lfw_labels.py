"""Write LFW DevTest-as-a-library labels: people with 2+ photos, one ``photo,identity`` row each.

    python benchmarks/make_lfw_labels.py [--lfw ../shared/data/lfw] [--out tests/data/labels/lfw_devtest.csv]

Photo paths are relative to ``<lfw>/images``, so evaluate with
``facetags eval clusters --labels tests/data/labels/lfw_devtest.csv ../shared/data/lfw/images``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from facetags.evaluate.labels import lfw_library_rows, write_photo_labels

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("make_lfw_labels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    parser.add_argument("--people", default="peopleDevTest.txt")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "labels" / "lfw_devtest.csv")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = lfw_library_rows(args.lfw, args.people)
    n = write_photo_labels(args.out, rows)
    log.info("%s: %d photos of %d people", args.out, n, len({name for _, name in rows}))


if __name__ == "__main__":
    main()
