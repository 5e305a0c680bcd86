"""The application shell: the one console script's router (cli.py), the demo that runs the main job
end to end (demo.py), and the wiring between packages that may not import each other (cli.WIRING).
It may import every package; none imports it (tests/test_architecture.py)."""
