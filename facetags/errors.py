"""Domain errors. Front ends turn these into a one-line message and a non-zero exit."""

from __future__ import annotations


class FacetagsError(Exception):
    """Base class for every error facetags reports to a user."""


class DecodeError(FacetagsError):
    """A file could not be decoded as a photo. The message names the file.

    ``access``: the file could not be reached (no permission, an I/O error from a failing disk,
    a share gone), which says nothing of its content; a scan tries it again, where a file that
    was read and is bad is skipped until it changes."""

    def __init__(self, path: object, reason: str, *, access: bool = False) -> None:
        self.path = str(path)
        self.reason = reason
        self.access = access
        super().__init__(f"{self.path}: {reason}")


class ModelError(FacetagsError):
    """A model file is missing, corrupt or of the wrong kind."""


class LibraryError(FacetagsError):
    """The library file cannot be opened, migrated or used."""


class NotFoundError(FacetagsError):
    """A person, face or photo that the user named does not exist."""


class NameTaken(FacetagsError):
    """A name another person already has, given without leave to merge the two (each front end
    says how to give it: ``--merge``, a question). ``other_id``: that person."""

    def __init__(self, message: str, other_id: int) -> None:
        self.other_id = other_id
        super().__init__(message)


class ConfigError(FacetagsError):
    """A setting has an invalid value."""


class ClusterError(FacetagsError):
    """The distributed engine that ``scan --cluster`` names is missing, unreachable or has no workers."""
