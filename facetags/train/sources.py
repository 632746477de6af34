"""The full training sets, checked out of the public repositories that hold them (no TensorFlow).

``../shared/data`` holds fixed-seed subsets of FairFace, UTKFace and Pins; the full sets sit in
three public git repositories, each at a pinned commit. :func:`fetch_sources` finds each
repository among the git directories it is given (a ``git clone``, or a bare or snapshot git
directory: the one that holds the pinned commit), writes the set's images at that commit into
a folder laid out like ``../shared/data``::

    fairface/train_1.jpg ... val_5000.jpg, labels.csv   (train and val both hold 1.jpg: prefixed)
    utkface/<age>_<gender>_<race>_<stamp>.jpg            (the repository's ".jpg.chip.jpg" dropped)
    pins/<Name>/<Name>_<i>_<j>.jpg                       ("pins_alycia dabnem carey" -> Alycia_Dabnem_Carey)

and records where each came from in ``SOURCES.json`` (set, repository, full commit, paths,
count, licence). Blobs are read with ``git cat-file --batch``: the repository's index and work
tree are never touched. Each file is written under a temporary name and renamed, so a stopped
run resumes (files already there with the blob's size are kept), and a set whose checkout
yields another count than the pinned one is an error, not a smaller training set.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facetags.errors import FacetagsError

log = logging.getLogger(__name__)

SOURCES_FILE = "SOURCES.json"


class SourceError(FacetagsError):
    """A source repository is missing or does not hold what the pinned commit should."""


@dataclass(frozen=True)
class Blob:
    path: str  # in the repository
    sha: str
    size: int


@dataclass(frozen=True)
class SourceSet:
    """One full set: where it lives and how its files are named in the output folder."""

    set: str  # the folder in the output, as in ../shared/data
    title: str
    repository: str  # owner/name on GitHub
    commit: str  # full 40-hex commit
    paths: tuple[str, ...]  # folders in the repository at that commit
    count: int  # images the checkout must yield
    licence: str
    #: repository path -> path under ``<out>/<set>/`` (None: not an image of the set)
    rename: Callable[[str], str | None] = field(repr=False, compare=False)
    #: writes derived files (label tables) from the checked-out repository: (git, commit, folder)
    extra: Callable[[Git, str, Path], None] | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repository}"

    def clone_hint(self) -> str:
        return f"git clone {self.url}"

    def record(self, count: int) -> dict[str, Any]:
        """This set's entry in SOURCES.json."""
        return {
            "set": self.set,
            "title": self.title,
            "repository": self.repository,
            "url": self.url,
            "commit": self.commit,
            "paths": list(self.paths),
            "count": count,
            "licence": self.licence,
        }


# --------------------------------------------------------------------------- naming


def fairface_name(path: str) -> str | None:
    """``fair_face/train/1.jpg`` -> ``train_1.jpg`` (train and val both number from 1)."""
    parts = path.split("/")
    if len(parts) != 3 or not parts[2].lower().endswith(".jpg"):
        return None
    return f"{parts[1]}_{parts[2]}"


def utkface_name(path: str) -> str | None:
    """``data/UTKFace/unlabeled/26_0_1_2017...jpg.chip.jpg`` -> ``26_0_1_2017...jpg`` (the
    subset's names); the few misnamed files (a space, a missing dot) are tidied the same way."""
    name = path.rsplit("/", 1)[-1]
    if not name.lower().endswith(".jpg"):
        return None
    stem = re.sub(r"\.?jpg$", "", name.removesuffix(".chip.jpg")).replace(" ", "")
    return f"{stem}.jpg"


def pins_person(folder: str) -> str:
    """``pins_alycia dabnem carey`` -> ``Alycia_Dabnem_Carey``: the names of ``../shared/data/pins``
    (each word capitalised, spaces to underscores; ``Robert Downey Jr`` stays as it is)."""
    return "_".join(w[:1].upper() + w[1:] for w in folder.removeprefix("pins_").split())


def pins_name(path: str) -> str | None:
    """``datasets/pins_Adriana Lima/Adriana Lima101_3.jpg`` -> ``Adriana_Lima/Adriana_Lima_101_3.jpg``."""
    parts = path.split("/")
    if len(parts) != 3 or not parts[1].startswith("pins_") or not parts[2].lower().endswith(".jpg"):
        return None
    raw = parts[1].removeprefix("pins_")
    person = pins_person(parts[1])
    stem = parts[2][: -len(".jpg")]
    rest = stem[len(raw) :] if stem.startswith(raw) else stem
    return f"{person}/{person}_{rest.strip().replace(' ', '_')}.jpg"


#: FairFace's label CSVs went through a spreadsheet: two age groups read as dates.
FAIRFACE_AGES = {"03-Sep": "3-9", "Oct-19": "10-19"}


def fairface_labels(git: Git, commit: str, folder: Path) -> None:
    """``labels.csv`` (file, age, gender, race) from the repository's two label tables."""
    rows = []
    for part in ("train", "val"):
        text = git.show(commit, f"fairface_label_{part}.csv")
        for row in csv.DictReader(io.StringIO(text)):
            name = fairface_name(f"fair_face/{row['file']}")
            if name is None:
                raise SourceError(f"fairface_label_{part}.csv: unexpected file {row['file']!r}")
            rows.append((name, FAIRFACE_AGES.get(row["age"], row["age"]), row["gender"], row["race"]))
    missing = [r[0] for r in rows if not (folder / r[0]).is_file()]
    if missing:
        raise SourceError(f"FairFace labels name {len(missing)} files not checked out, e.g. {missing[0]}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "age", "gender", "race"])
    writer.writerows(sorted(rows))
    write_atomically(folder / "labels.csv", buf.getvalue().encode("utf-8"))


#: The sets, as ``../shared/data/README.md`` ("Larger sets") lists them. Counts are what the
#: pinned commits hold: FairFace 40,000 + 5,000 (the README's 45,003 counts the repository's 3
#: test photos too); UTKFace 23,707 chips (one more than the README's 23,706: one file's name
#: has a space in it).
SETS = (
    SourceSet(
        set="fairface",
        title="FairFace (train + val)",
        repository="sumanvithaeadala/EthnicityDetection",
        commit="9b001ff28a8a2e7840bcf1c01c8efb97d22471e8",
        paths=("fair_face/train", "fair_face/val"),
        count=45_000,
        licence="CC BY 4.0 (upstream FairFace)",
        rename=fairface_name,
        extra=fairface_labels,
    ),
    SourceSet(
        set="utkface",
        title="UTKFace aligned chips",
        repository="mattans/AgeProgression",
        commit="2d937c615a3d10408db0ea795842e569bc9eedb0",
        paths=("data/UTKFace/unlabeled",),
        count=23_707,
        licence="non-commercial research only (upstream UTKFace)",
        rename=utkface_name,
    ),
    SourceSet(
        set="pins",
        title="Pins face recognition, full (105 people)",
        repository="IceTeaXXD/Algeo02-21004",
        commit="fe7a844046d20d69098109958ed127b753ae29e7",  # newer commits keep only a few photos
        paths=("datasets",),
        count=17_534,
        licence="none stated by the copy used; the pictures belong to their photographers",
        rename=pins_name,
    ),
)


# --------------------------------------------------------------------------- git


class Git:
    """Read-only access to one git directory (a clone's ``.git``, or a bare/snapshot one)."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir

    @classmethod
    def open(cls, folder: Path) -> Git | None:
        """The repository at ``folder`` (a clone's work tree or a git directory), else None."""
        folder = folder.resolve()
        if not (
            (folder / ".git").exists() or ((folder / "HEAD").is_file() and (folder / "objects").is_dir())
        ):
            return None
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--absolute-git-dir"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return None
        return cls(Path(done.stdout.strip()))

    def _run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], capture_output=True)

    def has_commit(self, commit: str) -> bool:
        return self._run("cat-file", "-e", f"{commit}^{{commit}}").returncode == 0

    def show(self, commit: str, path: str) -> str:
        done = self._run("show", f"{commit}:{path}")
        if done.returncode != 0:
            raise SourceError(f"{self.git_dir}: no {path} at {commit[:8]}")
        return done.stdout.decode("utf-8")

    def blobs(self, commit: str, paths: Iterable[str]) -> list[Blob]:
        """Every file under ``paths`` at ``commit`` (sorted by path)."""
        done = self._run("ls-tree", "-r", "-l", "-z", commit, "--", *paths)
        if done.returncode != 0:
            raise SourceError(f"{self.git_dir}: {done.stderr.decode(errors='replace').strip()}")
        out = []
        for entry in done.stdout.decode("utf-8").split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            mode, kind, sha, size = meta.split()
            if kind == "blob" and not mode.startswith("12"):  # no symlinks
                out.append(Blob(path, sha, int(size)))
        return sorted(out, key=lambda b: b.path)

    def read_blobs(self, blobs: list[Blob]) -> Iterable[tuple[Blob, bytes]]:
        """The contents of ``blobs``, in order, from one ``git cat-file --batch``."""
        proc = subprocess.Popen(
            ["git", f"--git-dir={self.git_dir}", "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            for blob in blobs:
                proc.stdin.write(f"{blob.sha}\n".encode())
                proc.stdin.flush()
                header = proc.stdout.readline().decode().split()
                if len(header) != 3 or header[1] != "blob":
                    raise SourceError(f"{self.git_dir}: cannot read {blob.path} ({' '.join(header)})")
                data = proc.stdout.read(int(header[2]))
                proc.stdout.read(1)  # the newline after each object
                yield blob, data
        finally:
            proc.stdin.close()
            proc.stdout.close()
            proc.wait()


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- checkout


def find_repositories(sets: Iterable[SourceSet], folders: Iterable[Path]) -> dict[str, Git]:
    """The repository of each set among ``folders``: the first that holds its pinned commit.
    A set with none is a :class:`SourceError` naming the ``git clone`` that provides it."""
    repos = []
    for folder in folders:
        git = Git.open(Path(folder))
        if git is None:
            raise SourceError(
                f"{folder}: not a git repository (a clone, or a bare or snapshot git directory)"
            )
        repos.append(git)
    found: dict[str, Git] = {}
    missing = []
    for s in sets:
        git = next((g for g in repos if g.has_commit(s.commit)), None)
        if git is None:
            missing.append(s)
        else:
            found[s.set] = git
    if missing:
        need = "; ".join(f"{m.title} @ {m.commit[:8]}: '{m.clone_hint()}'" for m in missing)
        raise SourceError(f"no --from repository holds {need} (then pass --from <that folder>)")
    return found


def read_sources(folder: Path) -> list[dict[str, Any]]:
    """SOURCES.json of a sources folder ([] when there is none yet)."""
    path = folder / SOURCES_FILE
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise SourceError(f"{path}: not a list of sets")
    return data


def count_images(folder: Path, s: SourceSet) -> int:
    pattern = "*/*.jpg" if s.set == "pins" else "*.jpg"
    return sum(1 for _ in (folder / s.set).glob(pattern))


def checkout(git: Git, s: SourceSet, out: Path) -> int:
    """Write set ``s`` at its commit into ``out/<s.set>``; returns the image count (checked)."""
    planned: dict[str, Blob] = {}
    for blob in git.blobs(s.commit, s.paths):
        name = s.rename(blob.path)
        if name is None:
            continue
        if name in planned:
            raise SourceError(f"{s.title}: {blob.path} and {planned[name].path} both map to {name}")
        planned[name] = blob
    if len(planned) != s.count:
        raise SourceError(
            f"{s.title}: commit {s.commit[:8]} holds {len(planned)} images under "
            f"{', '.join(s.paths)}, not the {s.count} expected"
        )
    folder = out / s.set
    todo = []
    for name, blob in planned.items():
        target = folder / name
        if not (target.is_file() and target.stat().st_size == blob.size):
            todo.append((name, blob))
    log.info("%s: %d images, %d to write", s.title, len(planned), len(todo))
    for parent in {(folder / name).parent for name, _ in todo}:
        parent.mkdir(parents=True, exist_ok=True)
    contents = git.read_blobs([b for _, b in todo])
    for k, ((name, _), (_, data)) in enumerate(zip(todo, contents, strict=True), 1):
        write_atomically(folder / name, data)
        if k % 5000 == 0:
            log.info("%s: %d/%d written", s.title, k, len(todo))
    if s.extra is not None:
        s.extra(git, s.commit, folder)
    found = count_images(out, s)
    if found != s.count:
        raise SourceError(f"{folder}: {found} images after the checkout, not {s.count} (other files there?)")
    return found


def fetch_sources(
    folders: Iterable[Path], out: Path, sets: tuple[SourceSet, ...] = SETS
) -> list[dict[str, Any]]:
    """Check every set of ``sets`` out of its repository among ``folders`` into ``out``; writes
    and returns ``out/SOURCES.json``. Safe to run again (what is there is kept and checked)."""
    repos = find_repositories(sets, folders)
    out.mkdir(parents=True, exist_ok=True)
    records = {r["set"]: r for r in read_sources(out)}
    for s in sets:
        old = records.get(s.set)
        if old is not None and (old["commit"], old["repository"]) != (s.commit, s.repository):
            raise SourceError(
                f"{out} holds {s.set} from {old['repository']} @ {old['commit'][:8]}, not "
                f"{s.repository} @ {s.commit[:8]}: use another --out folder"
            )
    for s in sets:
        records[s.set] = s.record(checkout(repos[s.set], s, out))
        write_atomically(
            out / SOURCES_FILE,
            (json.dumps(sorted(records.values(), key=lambda r: r["set"]), indent=1) + "\n").encode(),
        )
    return read_sources(out)
