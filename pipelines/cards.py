"""Model cards: what a model was trained on, example prompts and its measured scores.

A card is the model folder's ``README.md`` with YAML front matter, the Hugging Face Hub's
model-card format, read with ``huggingface_hub.ModelCard`` (no torch, so ``dit-studio models``
stays instant). The studio reads four keys of the card data::

    summary: one line          trained_on: one paragraph
    examples: [prompt, ...]    scores: [{metric, value, target, met}, ...]

``met`` is true / false where the metric has a target, absent where it has none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Score:
    metric: str
    value: str
    target: str = ""
    met: bool | None = None


@dataclass(frozen=True)
class Card:
    summary: str = ""
    trained_on: str = ""
    examples: tuple[str, ...] = ()
    scores: tuple[Score, ...] = ()

    @property
    def meets_targets(self) -> bool | None:
        """True if every score with a target meets it; None when there are no targets."""
        judged = [s.met for s in self.scores if s.met is not None]
        return all(judged) if judged else None

    def verdict(self) -> str:
        met = self.meets_targets
        if met is None:
            return "no targets measured"
        if met:
            return "meets its targets"
        short = sum(s.met is False for s in self.scores)
        return f"short of {short} of its {sum(s.met is not None for s in self.scores)} targets"

    def markdown(self, words: str = "") -> str:
        """The card as the web page shows it."""
        parts = [f"**{self.summary}** ({self.verdict()})" if self.summary else self.verdict()]
        if self.trained_on:
            parts.append(f"Trained on: {self.trained_on}")
        if words:
            parts.append(words)
        if self.scores:
            rows = ["| measured | value | target | |", "|---|---|---|---|"]
            mark = {True: "met", False: "not met", None: ""}
            rows += [
                f"| {s.metric} | {s.value} | {s.target} | {mark[s.met]} |" for s in self.scores
            ]
            parts.append("\n".join(rows))
        return "\n\n".join(parts)


CARD_FILE = "README.md"


def read_card(folder: str | os.PathLike) -> Card:
    """The card of a model folder; an empty Card when it has none. A card that is there but
    malformed is a clear error (it is the bundled data the page shows)."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        return Card()
    from huggingface_hub import ModelCard

    data = ModelCard.load(path).data.to_dict()
    try:
        scores = tuple(
            Score(str(s["metric"]), str(s["value"]), str(s.get("target", "")), s.get("met"))
            for s in data.get("scores") or ()
        )
        return Card(
            str(data.get("summary", "")),
            str(data.get("trained_on", "")),
            tuple(str(e) for e in data.get("examples") or ()),
            scores,
        )
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: malformed model card data ({e}); see pipelines/cards.py") from e
