-- facetags library schema, version 4: photos that went missing keep their faces and decisions.
--
-- A path that vanishes (deleted, moved out of the scanned folders, a drive or NAS offline) or
-- stops reading (truncated, being rewritten) moves from `files` to `missing`. Its photo, faces,
-- people and every decision stay until the same pixels come back (at that path or another: the
-- row goes and nothing was lost) or the user forgets it (`facetags forget`). `status` lists them.
CREATE TABLE missing (
    path      TEXT    PRIMARY KEY,          -- absolute path where the photo was last seen
    photo_id  INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    since     REAL    NOT NULL,             -- unix time it was first found missing
    reason    TEXT    NOT NULL              -- 'gone', or why it could not be read
);
CREATE INDEX missing_photo ON missing(photo_id);

-- The EXIF orientation (1..8) the photo's faces are placed under. Photos are keyed by their
-- stored pixels (before orientation is applied), so a photo whose orientation tag changes is the
-- same photo: its faces are turned with it and keep their ids, people and decisions.
ALTER TABLE photos ADD COLUMN orientation INTEGER NOT NULL DEFAULT 1;
