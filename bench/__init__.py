"""chatsite's benchmarks: `make bench` (or `python -m bench`). Figures: docs/performance.md."""
