"""bench: sweeps that generate images and score them, and the `imagen-bench` command."""
