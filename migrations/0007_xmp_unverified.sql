-- facetags library schema, version 7: photos whose file may no longer carry the names facetags
-- wrote into it (xmp_names): the file came back from elsewhere (a backup, a copy) or another
-- program rewrote its metadata. `facetags status` counts them with the photos whose names are
-- not written yet, and the next `xmp write` checks each one and clears its row.
CREATE TABLE xmp_unverified (
    photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
    since    REAL    NOT NULL
);
