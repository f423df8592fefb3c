"""The outputs folder as a history: every file the studio wrote, newest first, with the
settings it carries (ComfyUI's history, kept on disk, so it survives a reload and a restart).

Settings are read from the files themselves (PNG text, WAV chunk, MP4 tag), cached by path and
modification time; files being written (hidden temporary names) and foreign files are skipped.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .replay import read_settings

SUFFIXES = (".png", ".wav", ".mp4")


@dataclass(frozen=True)
class Entry:
    path: Path
    settings: dict[str, Any]


class History:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._cache: dict[tuple[str, int], dict[str, Any] | None] = {}
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        """Every studio-looking file under root, newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.rglob("*"):
            rel = path.relative_to(self.root).parts
            if path.suffix in SUFFIXES and not any(p.startswith(".") for p in rel):
                try:
                    found.append((path.stat().st_mtime_ns, path))
                except OSError:  # removed while listing
                    continue
        return [p for _, p in sorted(found, key=lambda t: (t[0], str(t[1])), reverse=True)]

    def settings(self, path: Path) -> dict[str, Any] | None:
        try:
            key = (str(path), path.stat().st_mtime_ns)
        except OSError:
            return None
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        try:
            value = read_settings(path)
        except Exception:  # not a studio file (or unreadable): not part of the history
            value = None
        with self._lock:
            self._cache[key] = value
        return value

    def page(self, modality: str, index: int = 0, per_page: int = 12) -> tuple[list[Entry], bool]:
        """Page ``index`` (0 = newest) of this modality's entries, and whether older ones exist.
        Reads settings only as far as the page needs."""
        want = (max(0, index) + 1) * per_page + 1  # one more tells whether a next page exists
        entries = []
        for path in self._files():
            s = self.settings(path)
            if s is not None and s.get("modality") == modality:
                entries.append(Entry(path, s))
                if len(entries) >= want:
                    break
        start = max(0, index) * per_page
        return entries[start : start + per_page], len(entries) > start + per_page
