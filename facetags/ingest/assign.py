"""What the indexer needs of the clustering: :class:`Assigner` places a new photo's faces.

The library hands the indexer :class:`facetags.people.assigner.ClusterAssigner`, which has these
methods; neither package imports the other. The faces go over as
:class:`facetags.db.records.NewFaceVector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from facetags.db.records import NewFaceVector
from facetags.db.store import Store


class Assigner(Protocol):
    def assign_photo(self, store: Store, photo_id: int, faces: Sequence[NewFaceVector]) -> dict[int, int]:
        """Put each face of one photo into a person (creating clusters as needed), inside the
        caller's write transaction. Returns face id -> person id."""
        ...

    def prepare(self, store: Store, vectors: Sequence[np.ndarray]) -> None:
        """Faces (embeddings) of photos that will be stored soon, in order: work that can be done
        for all of them at once may be done now. Changes nothing in the library."""
        ...

    def reassign(self, store: Store, face_id: int) -> int:
        """Find a new place for one face the user rejected from its person. Returns the person id."""
        ...

    def invalidate(self) -> None:
        """Forget anything cached: people changed through this connection."""
        ...
