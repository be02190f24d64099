"""Benchmarks: `tinyllm bench [NAME...]` writes docs/benchmarks.md and its plots."""
