"""imagen: a faithful, trainable Imagen cascade (Saharia et al. 2022, arXiv 2205.11487)."""

from common.version import __version__  # noqa: F401  (the one definition lives on the shared floor)
