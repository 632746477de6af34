-- facetags library schema, version 8: the names facetags may have written into each FILE of a
-- photo, not into the photo. A photo kept in several files (a copy in another folder, a backup
-- beside the original) gets its names in each, and the files can disagree: one that missed a
-- rename (a drive unplugged, a write that failed, a copy made before the rename) still carries
-- an older name, which the next `xmp write` takes back there and `xmp import` does not mistake
-- for another tool's. A file has a row for each name of facetags' it may carry for a face: the
-- name written (one row, once a write is done), or also the one being written when the write
-- was stopped (kill -9). A row follows its file when the file moves, and stays while the path
-- is missing (the file may come back); a new file of a photo starts with every name its other
-- files may carry.
-- Until this version names went into the path a photo was first indexed at; which file that
-- was is not known for sure (a file deleted and found again is indexed anew), so each record
-- goes to every file of the photo (and, for a missing photo, to where it was last seen), and a
-- photo in several files is unverified: the next `xmp write` looks at each file.
CREATE TABLE xmp_file_names (
    face_id    INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    path       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    written_at REAL    NOT NULL,
    PRIMARY KEY (face_id, path, name)
);
INSERT INTO xmp_file_names (face_id, path, name, written_at)
SELECT x.face_id, fl.path, x.name, x.written_at
FROM xmp_names x JOIN faces f ON f.id = x.face_id JOIN files fl ON fl.photo_id = f.photo_id;
INSERT OR IGNORE INTO xmp_file_names (face_id, path, name, written_at)
SELECT x.face_id, m.path, x.name, x.written_at
FROM xmp_names x JOIN faces f ON f.id = x.face_id JOIN missing m ON m.photo_id = f.photo_id
WHERE NOT EXISTS (SELECT 1 FROM files WHERE photo_id = f.photo_id);
INSERT OR IGNORE INTO xmp_unverified (photo_id, since)
SELECT DISTINCT f.photo_id, CAST(strftime('%s', 'now') AS REAL)
FROM xmp_names x JOIN faces f ON f.id = x.face_id
WHERE (SELECT COUNT(*) FROM files WHERE photo_id = f.photo_id) > 1;
DROP TABLE xmp_names;
ALTER TABLE xmp_file_names RENAME TO xmp_names;
CREATE INDEX xmp_names_path ON xmp_names(path);
