-- facetags library schema, version 5: files being analysed right now. A row is written before a
-- file is decoded and goes when the file is indexed or recorded as failed, so a row still there
-- when the file comes up again is an attempt that died with the process (killed for memory, a
-- crash in a decoder). After 2 such attempts the file is recorded in `failures` and skipped
-- until its size or mtime changes, instead of taking the scanner down at every restart.
CREATE TABLE attempts (
    path        TEXT    PRIMARY KEY,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    died        INTEGER NOT NULL DEFAULT 0,  -- earlier attempts at this (size, mtime) that never ended
    started_at  REAL    NOT NULL
);
