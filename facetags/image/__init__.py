"""Photos to pixels: decoding (every format to upright RGB, memory near the decoded file) and
the libwebp path for very large WebPs. A leaf any stage may use."""
