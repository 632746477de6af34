-- facetags library schema, version 10: the names facetags wrote into a file for a face that an
-- edit of the picture cut off. Until this version such a face took its `xmp_names` rows with it
-- (its photo, the older version, was deleted), so facetags no longer knew the name as its own:
-- the file kept facetags' region for a face that is not there, and its keyword, for ever, and
-- `xmp import` left the file unread while that region stayed where the older picture had it.
-- A row lasts while the file shows the edited picture (`photo_id`; a further edit carries it
-- on); `xmp write` takes the name out of a file placed for a picture of another shape (a crop),
-- and keeps the row while a file of the same shape still carries it (the face may still be
-- there, missed by the detector).
CREATE TABLE xmp_lost_names (
    path       TEXT    NOT NULL,             -- the file, as files.path
    photo_id   INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,  -- the edited picture
    name       TEXT    NOT NULL,             -- a name of facetags' own region there
    written_at REAL    NOT NULL,
    PRIMARY KEY (path, name)
);
CREATE INDEX xmp_lost_names_photo ON xmp_lost_names(photo_id);
