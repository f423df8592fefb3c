"""Scores per attribute -> percent right, shared by every world's scorer."""

from __future__ import annotations


def summarise(results: list[dict[str, bool | None]]) -> dict[str, float]:
    """Accuracy in percent per key, over the results where that key applies (not None)."""
    keys = dict.fromkeys(k for r in results for k in r)
    out = {}
    for k in keys:
        values = [r[k] for r in results if r.get(k) is not None]
        if values:
            out[k] = 100.0 * sum(values) / len(values)
    return out
