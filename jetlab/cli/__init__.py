"""The ``jetlab`` command line; each sub-command lives in its own module."""
