"""The package version, defined once (pyproject.toml reads it): every result on disk records it."""

__version__ = "0.1.0"
