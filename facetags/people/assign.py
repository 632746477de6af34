"""The interface between the indexer and the clustering.

:class:`Assigner` is what the library's indexer calls to place new faces (implemented by
:class:`facetags.people.assigner.ClusterAssigner`); :class:`NewFaceVector` is what it hands over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facetags.db.store import Store


@dataclass(frozen=True)
class NewFaceVector:
    face_id: int
    vector: np.ndarray  # (dim,) unit length


class Assigner(Protocol):
    def assign_photo(self, store: Store, photo_id: int, faces: Sequence[NewFaceVector]) -> dict[int, int]:
        """Put each face of one photo into a person (creating clusters as needed), inside the
        caller's write transaction. Returns face id -> person id."""
        ...

    def reassign(self, store: Store, face_id: int) -> int:
        """Find a new place for one face the user rejected from its person. Returns the person id."""
        ...

    def invalidate(self) -> None:
        """Forget anything cached: people changed through this connection."""
        ...
