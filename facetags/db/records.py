"""Plain records the store returns and the library hands to front ends (no SQL here)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    photo_id: int
    size: int
    mtime_ns: int
    device: int
    inode: int


@dataclass(frozen=True)
class FileStat:
    """What one ``stat`` says about a file: enough to tell whether it can have changed."""

    size: int
    mtime_ns: int
    device: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)

    def same_file(self, row: FileRow) -> bool:
        return (self.size, self.mtime_ns) == (row.size, row.mtime_ns)


@dataclass(frozen=True)
class Person:
    id: int
    name: str | None
    faces: int
    photos: int
    hidden: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "faces": self.faces,
            "photos": self.photos,
            "hidden": self.hidden,
        }


@dataclass(frozen=True)
class FaceRecord:
    face_id: int
    photo_id: int
    path: str  # absolute path of the photo (its first path when it has duplicates)
    box: tuple[float, float, float, float]  # x, y, w, h normalised to the upright photo
    score: float
    person_id: int | None
    person_name: str | None
    assigned_by: str | None = None
    landmarks: tuple[tuple[float, float], ...] = ()
    width: int = 0  # upright full-size photo size in pixels
    height: int = 0
    xmp_name: str | None = None  # the name facetags last wrote for this face into the file at path
    xmp_written: tuple[str, ...] = ()  # names of facetags' that file may carry for this face
    missing: bool = False  # the photo is not on disk now (path: where it was last seen)

    def to_json(self) -> dict[str, object]:
        return {
            "face_id": self.face_id,
            "path": self.path,
            "box": [round(v, 6) for v in self.box],
            "score": round(self.score, 5),
            "person_id": self.person_id,
            "person_name": self.person_name,
            "missing": self.missing,  # its photo is not on disk (kept as missing)
        }


#: Why a photo is kept as missing (MissingPhoto.reason): its path vanished ...
GONE = "gone"
#: ... its path now shows another photo (renamed over, replaced, a name reused); else the
#: error that kept it from being read there
REPLACED = "its file now shows another photo"


@dataclass(frozen=True)
class MissingPhoto:
    """An indexed photo no longer on disk (or not readable): kept, faces and decisions and all,
    until its pixels come back or the user forgets it."""

    path: str  # where it was last seen
    photo_id: int
    since: float  # unix time
    reason: str  # "gone", or why it could not be read
    faces: int
    named_faces: int  # of those, faces of named people

    def state(self) -> str:
        """Where it is, in words: "not on disk", "no longer at its path (...)", "not readable (...)"."""
        if self.reason == GONE:
            return "not on disk"
        if self.reason == REPLACED:
            return "no longer at its path (another photo is there now)"
        return f"not readable ({self.reason})"

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "photo_id": self.photo_id,
            "since": round(self.since, 3),
            "reason": self.reason,
            "faces": self.faces,
            "named_faces": self.named_faces,
        }


@dataclass(frozen=True)
class Failure:
    path: str
    error: str
    attempts: int

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "error": self.error, "attempts": self.attempts}


@dataclass(frozen=True)
class SuggestedFace:
    """A face offered for review as someone's (``Library.suggested_faces``)."""

    face_id: int
    cluster_id: int  # the unnamed cluster it is in now
    cluster_faces: int  # how many faces that cluster holds
    score: float  # similarity to the person (mean of its best matches)
    path: str  # its photo

    def to_json(self) -> dict[str, object]:
        return {
            "face_id": self.face_id,
            "cluster_id": self.cluster_id,
            "cluster_faces": self.cluster_faces,
            "similarity": round(self.score, 4),
            "path": self.path,
        }


@dataclass(frozen=True)
class LostFace:
    """A face the user had decided on (named, placed, marked not a face) that an edited version
    of its photo no longer shows: recorded as a ``face_lost`` decision when the photo changed."""

    decision_id: int
    at: float  # seconds since the epoch
    path: str
    name: str | None  # the person's name then, if any
    person_id: int | None
    not_face: bool

    def describe(self) -> str:
        what = self.name or (
            "a face marked not a face" if self.not_face else f"a face of person {self.person_id}"
        )
        return f"{self.path}: {what}"

    def to_json(self) -> dict[str, object]:
        return {
            "at": self.at,
            "path": self.path,
            "name": self.name,
            "person_id": self.person_id,
            "not_face": self.not_face,
        }


@dataclass(frozen=True)
class Status:
    library: str
    schema_version: int
    photos: int
    files: int
    faces: int
    people: int  # named people
    clusters: int  # unnamed clusters with at least one face
    queue: int
    failures: list[Failure]
    bytes: int
    model: str = ""  # the embedder's versioned id (facetags.vision.specs)
    stale_faces: int = 0  # faces with no vector of that model yet (re-embedded on the next scan)
    lost_faces: list[LostFace] = field(default_factory=list)  # decided faces gone from edited photos
    stale_xmp_photos: int = 0  # photos carrying a name facetags wrote that is no longer right
    stale_xmp_read_only: int = 0  # of those, read-only photos: no write can bring them up to date
    missing: list[MissingPhoto] = field(default_factory=list)  # photos gone from disk, kept
    unwritten_xmp_photos: int = 0  # photos with names not yet written into their XMP

    def to_json(self) -> dict[str, object]:
        return {
            "library": self.library,
            "schema_version": self.schema_version,
            "photos": self.photos,
            "files": self.files,
            "faces": self.faces,
            "people": self.people,
            "clusters": self.clusters,
            "queue": self.queue,
            "failures": [f.to_json() for f in self.failures],
            "bytes": self.bytes,
            "model": self.model,
            "stale_faces": self.stale_faces,
            "lost_faces": [f.to_json() for f in self.lost_faces],
            "stale_xmp_photos": self.stale_xmp_photos,
            "stale_xmp_read_only": self.stale_xmp_read_only,
            "missing": [m.to_json() for m in self.missing],
            "unwritten_xmp_photos": self.unwritten_xmp_photos,
        }


@dataclass(frozen=True)
class NewFaceVector:
    """A newly stored face and its embedding, handed from the indexer to the clustering."""

    face_id: int
    vector: np.ndarray  # (dim,) unit length
