"""Benchmarks: speed and memory tables for the DiT core, beside diffusers and the peak."""
