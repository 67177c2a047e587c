"""Benchmark workloads: each module has ``cases(size, peers) -> list[harness.Case]`` (sizes tiny/quick/full)."""
