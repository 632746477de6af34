-- facetags library schema, version 9: a path may be where several missing photos were last seen.
-- A path that shows another photo now (a photo renamed over an indexed one, a folder replaced by
-- another of the same name, a camera reusing a file name after the photos were moved away) keeps
-- the photo it showed before as missing there; until this version the path was the key, so a
-- second photo kept there replaced the first one's row, and that photo (faces, names and every
-- decision) was listed nowhere: neither on disk nor missing, never found again, never
-- forgettable.
CREATE TABLE missing_per_photo (
    path      TEXT    NOT NULL,             -- absolute path where the photo was last seen
    photo_id  INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    since     REAL    NOT NULL,             -- unix time it was first found missing
    reason    TEXT    NOT NULL,             -- 'gone', or why it could not be read
    PRIMARY KEY (path, photo_id)
);
INSERT INTO missing_per_photo (path, photo_id, since, reason)
SELECT path, photo_id, since, reason FROM missing;
DROP TABLE missing;
ALTER TABLE missing_per_photo RENAME TO missing;
CREATE INDEX missing_photo ON missing(photo_id);
-- Photos orphaned that way before this version (no file, not missing) are listed as missing
-- again, where facetags last wrote names for them if it did, so that `status` shows them and
-- a scan that finds their pixels brings them back; `facetags forget --all` drops them.
INSERT INTO missing (path, photo_id, since, reason)
SELECT COALESCE(
           (SELECT x.path FROM xmp_names x JOIN faces f ON f.id = x.face_id
            WHERE f.photo_id = p.id ORDER BY x.written_at DESC LIMIT 1),
           '(path unknown)'),
       p.id, CAST(strftime('%s', 'now') AS REAL), 'its file now shows another photo'
FROM photos p
WHERE NOT EXISTS (SELECT 1 FROM files WHERE photo_id = p.id)
  AND NOT EXISTS (SELECT 1 FROM missing WHERE photo_id = p.id);
