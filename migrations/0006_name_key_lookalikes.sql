-- facetags library schema, version 6: the search key of a name (people.name_key) reads a
-- typographic apostrophe (U+2019, U+2018, U+02BC) as ' and a typographic hyphen (U+2010, U+2011)
-- as -, as facetags.names.name_key now does: "O’Brien" and "O'Brien" are one name.
UPDATE people SET name_key = replace(replace(replace(replace(replace(name_key,
    char(8217), ''''), char(8216), ''''), char(700), ''''), char(8208), '-'), char(8209), '-')
WHERE name_key IS NOT NULL;
