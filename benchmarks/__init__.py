"""The benchmark harness: `make bench` (benchmarks/run.py); see benchmarks/README.md."""
