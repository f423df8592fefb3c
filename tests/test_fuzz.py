"""Every entry point of a request lets out nothing but RequestError on malformed values, and
the batch runner turns every line into a job or a bad line (``benchmarks/fuzz.py``; its
command runs the long version). Bounded: a few hundred cases per layer."""

import pytest

from benchmarks.fuzz import checks

CASES = 150


@pytest.mark.parametrize("layer", ["request", "direct", "form", "replay", "batch"])
def test_malformed_values_never_escape(layer):
    dict(checks(CASES))[layer]()


def test_a_prompt_holding_a_unicode_line_separator_is_one_job(tmp_path):
    from app.batch import parse_jobs

    jobs = tmp_path / "jobs.jsonl"
    lines = [
        '{"prompt": "a red\\u2028circle"}',
        '{"prompt": "a red\u2028circle"}',
        '{"prompt": "a red\x1ecircle"}',
    ]
    jobs.write_text("\r\n".join(lines))
    done, bad = parse_jobs(jobs)
    assert [j.request.prompt for j in done] == ["a red\u2028circle"] * 2
    # a raw control character is not allowed in a JSON string: one bad line, the right number
    assert [b.line for b in bad] == [3] and "Invalid control character" in bad[0].reason
