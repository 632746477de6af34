-- facetags library schema, version 8: what facetags wrote into each FILE of a photo, not into
-- the photo. A photo kept in several files (a copy in another folder, a backup beside the
-- original) gets its names in each, and the files can disagree: one that missed a rename (a
-- drive unplugged, a write that failed) still carries the old name, which the next `xmp write`
-- takes back there and `xmp import` does not mistake for another tool's. A record follows its
-- file when the file moves, and stays while the path is missing (the file may come back).
-- Until this version names went into the path a photo was first indexed at: each record moves
-- to that path (or, for a missing photo, to where it was last seen).
CREATE TABLE xmp_file_names (
    face_id    INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    path       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    written_at REAL    NOT NULL,
    PRIMARY KEY (face_id, path)
);
INSERT INTO xmp_file_names (face_id, path, name, written_at)
SELECT face_id, path, name, written_at FROM (
    SELECT x.face_id, x.name, x.written_at, COALESCE(
        (SELECT path FROM files WHERE photo_id = f.photo_id ORDER BY id LIMIT 1),
        (SELECT path FROM missing WHERE photo_id = f.photo_id LIMIT 1)
    ) AS path
    FROM xmp_names x JOIN faces f ON f.id = x.face_id
) WHERE path IS NOT NULL;
DROP TABLE xmp_names;
ALTER TABLE xmp_file_names RENAME TO xmp_names;
CREATE INDEX xmp_names_path ON xmp_names(path);
