"""XMP face tags: write facetags' people into photos (MWG/MP regions, keywords), read other tools'.

Entry points: :func:`facetags.xmp.write.write_photo` (one photo), :mod:`facetags.xmp.sync`
(``write_photos``, which ``Library.write_xmp`` calls for the CLI and the TUI; ``import_photo``,
``apply_import``) and
:func:`facetags.xmp.read.read_regions`. See docs/xmp.md.
"""
