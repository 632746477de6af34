-- facetags library schema, version 3: the name facetags last wrote into a photo's XMP for each
-- face. A later `xmp write` uses it to take back its own stale names (the user renamed the
-- person, rejected the face, or said it is not a face) while names other tools wrote stay as
-- they are; `xmp import` uses it to tell facetags' own old tags from another tool's decisions.
-- A face that disappears (its photo edited or deleted) takes its row with it.
CREATE TABLE xmp_names (
    face_id    INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    written_at REAL    NOT NULL
);
