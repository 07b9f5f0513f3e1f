"""The `emulate` command: a thin layer over the Python API (parser, then main)."""
