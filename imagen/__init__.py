"""imagen: a faithful, trainable Imagen cascade (Saharia et al. 2022, arXiv 2205.11487)."""
__version__ = "0.1.0"
