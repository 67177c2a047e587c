"""The difsci benchmark suite (see run.py and RESULTS.md)."""
