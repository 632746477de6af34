-- facetags library schema, version 2: a covering index for the per-person counts.
-- `people` (and `person`) count each person's real faces and distinct photos: with
-- faces(person_id, not_face, photo_id) SQLite answers that from the index alone
-- (EXPLAIN QUERY PLAN: "SEARCH f USING COVERING INDEX faces_person_cover (person_id=? AND
-- not_face=?)") instead of reading every face row. It also serves every lookup the old
-- faces(person_id) index did, which therefore goes.
CREATE INDEX faces_person_cover ON faces(person_id, not_face, photo_id);
DROP INDEX faces_person;
