-- facetags library schema, version 1.
-- Applied by facetags.db.migrate in one transaction and recorded in schema_migrations.
-- Released migrations are never edited: change the schema with a new numbered file.

-- Key/value facts about the library (e.g. the embedder the automatic assignments came from).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per distinct picture, keyed by a hash of its decoded pixels, so that rewriting a
-- file's metadata (XMP) does not make it a new photo and a copy at a second path is the same
-- photo. A row exists only once the photo is fully processed (faces stored and assigned).
CREATE TABLE photos (
    id            INTEGER PRIMARY KEY,
    content_hash  TEXT    NOT NULL UNIQUE,   -- "<hash side>:<blake2b hex of the decoded pixels + shape>"
    width         INTEGER NOT NULL,          -- full-size upright width in pixels
    height        INTEGER NOT NULL,          -- full-size upright height in pixels
    detector      TEXT    NOT NULL,          -- what found the faces (detector id and settings)
    created_at    REAL    NOT NULL           -- unix time the photo was indexed
);

-- The paths at which a photo's content lives: one usually, several for duplicates.
-- (size, mtime_ns) tell a later scan with one stat whether the file can have changed;
-- (device, inode) let a scan recognise a hard link or a rename without decoding.
CREATE TABLE files (
    id        INTEGER PRIMARY KEY,
    path      TEXT    NOT NULL UNIQUE,       -- absolute path, as found (symlinks not resolved)
    photo_id  INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    device    INTEGER NOT NULL,
    inode     INTEGER NOT NULL,
    seen_at   REAL    NOT NULL
);
CREATE INDEX files_photo ON files(photo_id);
CREATE INDEX files_inode ON files(inode, device);

-- Files that could not be indexed, with the reason. A later scan retries one only when its
-- size or mtime changed.
CREATE TABLE failures (
    path       TEXT    PRIMARY KEY,
    size       INTEGER,
    mtime_ns   INTEGER,
    error      TEXT    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 1,
    failed_at  REAL    NOT NULL
);

-- Work found but not yet done (paths a scan or the watcher will index). Visible to `status`.
CREATE TABLE queue (
    path         TEXT PRIMARY KEY,
    enqueued_at  REAL NOT NULL
);

-- People and unnamed clusters. A merged person keeps its row with merged_into set, so that
-- rejections and decisions that name it still resolve, and the merge is remembered.
CREATE TABLE people (
    id           INTEGER PRIMARY KEY,
    name         TEXT,                       -- NULL: an unnamed cluster
    name_key     TEXT,                       -- casefolded, accents stripped (search)
    hidden       INTEGER NOT NULL DEFAULT 0, -- a stranger the user hid
    merged_into  INTEGER REFERENCES people(id) ON DELETE SET NULL,
    created_at   REAL    NOT NULL,
    updated_at   REAL    NOT NULL
);
CREATE INDEX people_name_key ON people(name_key);
CREATE INDEX people_merged_into ON people(merged_into);

-- Detected faces. Geometry is normalised to the upright photo (0..1): box (x, y, w, h) and
-- five landmarks (left eye, right eye, nose, left mouth, right mouth) as 10 little-endian
-- float32 (x1, y1, ..., x5, y5). Every face that is not marked "not a face" belongs to exactly
-- one person or cluster; assigned_by says whether the machine or the user put it there.
CREATE TABLE faces (
    id           INTEGER PRIMARY KEY,
    photo_id     INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,           -- order within the photo (detector order)
    x            REAL    NOT NULL,
    y            REAL    NOT NULL,
    w            REAL    NOT NULL,
    h            REAL    NOT NULL,
    landmarks    BLOB    NOT NULL,
    score        REAL    NOT NULL,
    thumb        BLOB,                       -- aligned 112x112 crop, JPEG bytes (for the UI)
    person_id    INTEGER REFERENCES people(id) ON DELETE SET NULL,
    assigned_by  TEXT    CHECK (assigned_by IN ('auto', 'user')),
    assigned_at  REAL,
    not_face     INTEGER NOT NULL DEFAULT 0, -- the user said this is not a face
    UNIQUE (photo_id, idx)
);
CREATE INDEX faces_person ON faces(person_id);

-- Face embeddings, one per face and model, so that a model change can re-embed faces while the
-- old vectors (and every user decision) stay until the new ones are in place.
CREATE TABLE embeddings (
    face_id   INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    model_id  TEXT    NOT NULL,
    dim       INTEGER NOT NULL,
    vector    BLOB    NOT NULL,              -- dim little-endian float32, unit length
    PRIMARY KEY (face_id, model_id)
) WITHOUT ROWID;
CREATE INDEX embeddings_model ON embeddings(model_id);

-- The user said: this face is not this person. Clustering never puts it back there.
CREATE TABLE rejections (
    face_id     INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    person_id   INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    created_at  REAL    NOT NULL,
    PRIMARY KEY (face_id, person_id)
) WITHOUT ROWID;
CREATE INDEX rejections_person ON rejections(person_id);

-- The user said: these two faces are different people (a split). Clustering never joins them.
CREATE TABLE cannot_link (
    face_a      INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    face_b      INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    created_at  REAL    NOT NULL,
    PRIMARY KEY (face_a, face_b),
    CHECK (face_a < face_b)
) WITHOUT ROWID;
CREATE INDEX cannot_link_b ON cannot_link(face_b);

-- Every user decision, in order (name, merge, assign, reject, hide, not_face, split), so they
-- can be replayed after a re-cluster or a model change. detail is JSON.
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY,
    at          REAL    NOT NULL,
    kind        TEXT    NOT NULL,
    face_id     INTEGER,
    person_id   INTEGER,
    other_id    INTEGER,
    detail      TEXT
);
