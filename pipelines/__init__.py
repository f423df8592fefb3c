"""Pipelines: thin compositions, request -> condition -> sample -> decode -> save."""
