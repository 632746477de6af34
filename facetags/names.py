"""People's names: validation, the search key (case-, accent- and white-space-insensitive), close
matches. One rule for the library, the XMP import and the front ends."""

from __future__ import annotations

import difflib
import unicodedata

from facetags.errors import FacetagsError

MAX_NAME = 200


def clean_name(name: str) -> str:
    """A name as stored: surrounding and repeated white space removed. Raises on empty names or
    control characters."""
    text = " ".join(unicodedata.normalize("NFC", name).split())
    if not text:
        raise FacetagsError("a name cannot be empty")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise FacetagsError(f"a name cannot contain control characters: {name!r}")
    if len(text) > MAX_NAME:
        raise FacetagsError(f"a name is at most {MAX_NAME} characters")
    return text


#: Characters keyboards type for an apostrophe or a hyphen (a phone's ’, a word processor's ‐),
#: read as the plain ones: "O’Brien" is "O'Brien". (Migration 0006 applies the same to the keys
#: stored before.)
LOOKALIKES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2010": "-", "\u2011": "-"})


def name_key(name: str) -> str:
    """The search key: accents stripped, case folded, white space collapsed ("José" == "jose"),
    typographic apostrophes and hyphens read as plain ones ("O’Brien" == "o'brien")."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().translate(LOOKALIKES).split())


def name_words(key: str) -> list[str]:
    """A name key's words, between white space, punctuation and symbols: 'jean-luc picard' ->
    jean, luc, picard; 'william "bill" gates' -> william, bill, gates. Letters, digits and
    marks (the vowel signs of Devanagari or Thai) stay inside their word."""
    words: list[str] = []
    word: list[str] = []
    for ch in key:
        if unicodedata.category(ch)[0] in "ZPSC":
            words.append("".join(word))
            word = []
        else:
            word.append(ch)
    words.append("".join(word))
    return [w for w in words if w]


def words_key(name: str) -> str:
    """The key of :func:`same_name`: the name's words, punctuation aside ("john d ashcroft" for
    "John D. Ashcroft"); the plain key for a name of punctuation alone."""
    key = name_key(name)
    return " ".join(name_words(key)) or key


def same_name(a: str, b: str) -> bool:
    """Whether two names are one: the same key (case, accents and white space aside), or the
    same words in the same order, punctuation aside ("John D. Ashcroft" and "john d ashcroft",
    "Jean-Luc" and "Jean Luc")."""
    return name_key(a) == name_key(b) or words_key(a) == words_key(b)


def close_matches(name: str, known: list[str], n: int = 3) -> list[str]:
    """Known names that look like ``name`` (compared by key), best first."""
    by_key: dict[str, str] = {}
    for k in known:
        by_key.setdefault(name_key(k), k)
    key = name_key(name)
    found = difflib.get_close_matches(key, list(by_key), n=n, cutoff=0.6)
    found += [k for k in by_key if key and key in k.split() and k not in found]
    return [by_key[k] for k in found[:n]]
