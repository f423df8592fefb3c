"""``dit-studio batch jobs.jsonl --out DIR``: many requests, resumable, exactly once, any
number of processes.

Each line of the jobs file is one request in the schema the CLI and the app use
(:class:`pipelines.request.Request`), plus two optional keys: ``id`` (a name for the job;
by default a hash of the line's content, so editing other lines never renames a job) and
``modality`` (``image``, ``audio`` or ``video``: the bundled default model of that kind when
no ``model`` is given). A job without a seed gets one derived from its id, so a rerun makes the
same bytes.

Exactly once: every output is written atomically (temporary file, fsync, rename), and only
then is the job's manifest record appended (one JSON line: id, line, output paths with their
SHA-256, settings, and a digest of the resolved request). A rerun skips every job whose record
for the same request is there and whose files still hash to it; a job killed mid-way is made
again, over the same names, with the same bytes. A job edited under an explicit ``id`` is a new
request: it is made again, its earlier files kept under their names and the new ones beside
them (``ID-00-1.png``), as ``generate`` never overwrites.

Many processes: ``accelerate launch --num_processes N -m app.cli batch ...`` shards the pending
jobs by rank; each process appends to its own manifest part, and the first merges the parts
into one ``manifest.jsonl`` at the end (and at the start, after a crash). A job's bytes depend
only on the job, never on the process or its neighbours.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipelines.request import Request, RequestError
from pipelines.spec import DEFAULT_MODEL, DEFAULT_MODELS, ModelSpec, resolve_lora, resolve_model

MANIFEST = "manifest.jsonl"
PART = "manifest.part-{rank}.jsonl"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MODALITY_DEFAULTS = DEFAULT_MODELS


@dataclass(frozen=True)
class Job:
    id: str
    line: int  # 1-based line in the jobs file
    request: Request  # resolved: defaults filled, seed fixed, validated


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


# --- reading the jobs file -------------------------------------------------------------------


def _seed_of(job_id: str) -> int:
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big") % 2**31


def parse_jobs(path: str | os.PathLike) -> tuple[list[Job], list[BadLine]]:
    """Every valid job and every bad line (with its number and what to change)."""
    jobs: list[Job] = []
    bad: list[BadLine] = []
    specs: dict[str, ModelSpec] = {}
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        # JSON Lines ends lines at "\n" only: splitlines() would also split a prompt holding
        # U+2028 or a control character, both valid inside a JSON string
        lines = [line.removesuffix("\r") for line in f.read().split("\n")]
    for number, text in enumerate(lines, start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            job = _parse_line(text, number, specs, seen)
        except (RequestError, ValueError, OSError, TypeError, OverflowError) as e:
            # OSError: a model or adapter path the file system refuses (too long, ...)
            bad.append(BadLine(number, str(e)))
            continue
        seen[job.id] = number
        jobs.append(job)
    return jobs, bad


def _parse_line(text: str, number: int, specs: dict[str, ModelSpec], seen: dict[str, int]) -> Job:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"a job must be a JSON object, got {type(data).__name__}")
    data = dict(data)
    job_id = data.pop("id", None)
    modality = data.pop("modality", None)
    if modality is not None:
        if modality not in MODALITY_DEFAULTS:
            raise ValueError(f"modality={modality!r}: use one of {sorted(MODALITY_DEFAULTS)}")
        data.setdefault("model", MODALITY_DEFAULTS[modality])
    if job_id is None:
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
        job_id, k = digest, 2
        while job_id in seen:  # the same line twice: two jobs, two names
            job_id, k = f"{digest}-{k}", k + 1
    elif not isinstance(job_id, str) or not _ID.match(job_id):
        raise ValueError(f"id={job_id!r}: use 1-64 letters, digits, '.', '_' or '-'")
    elif job_id in seen:
        raise ValueError(f"id={job_id!r} is already used on line {seen[job_id]}: ids are unique")
    request = Request.from_dict(data)
    model = request.model or DEFAULT_MODEL
    if model not in specs:
        specs[model] = ModelSpec.read(resolve_model(model))[1]
    spec = specs[model]
    if modality is not None and spec.modality != modality:
        raise ValueError(f"model {model!r} makes {spec.modality}, not {modality}")
    if request.seed is None:
        request = replace(request, seed=_seed_of(job_id))
    request = replace(request, model=model).resolve(spec.request_defaults(), spec.request_limits())
    for path, _ in request.loras:  # a missing adapter is this line's fault, found before any job
        resolve_lora(path)
    return Job(job_id, number, request)


# --- the manifest ----------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _records(path: Path) -> list[dict[str, Any]]:
    """A manifest's records; a last line cut short by a kill is ignored."""
    if not path.is_file():
        return []
    out = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "id" in record:
            out.append(record)
    return out


def request_digest(request: Request) -> str:
    """What a record is of: the resolved request (seed included), hashed."""
    text = json.dumps(request.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def merge_manifest(out: Path) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Fold every process's part into ``manifest.jsonl`` (atomically), drop the parts; returns
    (id, request digest) -> record (records of older manifests have no digest: None)."""
    from pipelines.outputs import atomic_write_bytes

    parts = sorted(out.glob(PART.format(rank="*")))
    records = {
        (r["id"], r.get("request")): r for p in [out / MANIFEST, *parts] for r in _records(p)
    }
    ordered = sorted(records.values(), key=lambda r: (r.get("line", 0), r["id"]))
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in ordered)
    if parts or (out / MANIFEST).exists() or records:
        atomic_write_bytes(out / MANIFEST, text.encode())
    for p in parts:
        p.unlink()
    return records


def is_done(record: dict[str, Any] | None, out: Path) -> bool:
    """A record whose every file is there, with the bytes it was written with."""
    if record is None:
        return False
    files = record.get("outputs", [])
    return bool(files) and all(
        (out / f["path"]).is_file() and _sha256(out / f["path"]) == f["sha256"] for f in files
    )


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def clean_temporaries(out: Path) -> int:
    """Remove the hidden temporary files a killed write left (never a finished output)."""
    stale = list(out.glob(".*.part"))
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


# --- running ---------------------------------------------------------------------------------


def done_and_kept(job: Job, records: dict, out: Path) -> tuple[bool, frozenset[str]]:
    """Whether ``job`` is done (a record of its request with every file intact; a record with
    no digest, from an older manifest, counts as its request), and the files of its id's
    records for other requests (an edited job's earlier outputs, never written over)."""
    digest = request_digest(job.request)
    mine = [r for (i, d), r in records.items() if i == job.id and d in (digest, None)]
    kept = {
        f["path"]
        for (i, d), r in records.items()
        if i == job.id and d not in (digest, None)
        for f in r.get("outputs", [])
    }
    return any(is_done(r, out) for r in mine), frozenset(kept)


def _name(job: Job, index: int, suffix: str, kept: frozenset[str]) -> str:
    name, n = f"{job.id}-{index:02d}{suffix}", 0
    while name in kept:
        n += 1
        name = f"{job.id}-{index:02d}-{n}{suffix}"
    return name


def run_job(
    pipe, job: Job, out: Path, callback=None, kept: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Make one job's outputs, write each atomically (never over a name in ``kept``); returns
    its manifest record."""
    from pipelines.outputs import atomic_write_bytes

    outputs = pipe(job.request, callback=callback)
    files, settings = [], []
    for o in outputs:
        data = pipe.encode_file(o.media, o.settings)
        name = _name(job, o.settings["index"], o.suffix, kept)
        atomic_write_bytes(out / name, data)
        files.append({"path": name, "sha256": hashlib.sha256(data).hexdigest()})
        settings.append(o.settings)
    return {
        "id": job.id,
        "line": job.line,
        "model": job.request.model,
        "outputs": files,
        "settings": settings,
        "request": request_digest(job.request),
    }


def run_batch(jobs_file: str, out_dir: str, device: str | None = None, quiet: bool = False) -> int:
    """The whole batch on this process's share; returns the CLI exit code (0: all jobs done,
    1: some lines were invalid or some jobs failed, the rest done)."""
    import torch
    from accelerate import PartialState
    from tqdm.auto import tqdm

    from pipelines.registry import load_pipeline

    # cpu=True on a machine without CUDA: a `--multi_gpu` launch there then really forms a
    # gloo group of N CPU processes instead of N lone single-process states.
    state = PartialState(cpu=not torch.cuda.is_available())
    rank, world = state.process_index, state.num_processes
    out = Path(out_dir)
    jobs, bad = parse_jobs(jobs_file)
    if state.is_main_process:
        for b in bad:
            print(f"{jobs_file}:{b.line}: {b.reason}", file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        clean_temporaries(out)
        merge_manifest(out)  # a crashed multi-process run leaves parts: fold them in first
    state.wait_for_everyone()
    records = {(r["id"], r.get("request")): r for r in _records(out / MANIFEST)}
    state_of = {j.id: done_and_kept(j, records, out) for j in jobs}
    pending = [j for j in jobs if not state_of[j.id][0]]
    mine = pending[rank::world]
    if state.is_main_process:
        print(
            f"{len(jobs)} job(s), {len(jobs) - len(pending)} already done, {len(pending)} to "
            f"make on {world} process(es); {len(bad)} invalid line(s)"
        )
    part = out / PART.format(rank=rank)
    pipes: dict[str, Any] = {}
    dev = device or str(state.device)
    show = not quiet and state.is_local_main_process
    failed = 0
    with tqdm(total=len(mine), unit="job", desc=f"jobs (process {rank})", disable=not show) as bar:
        for job in mine:
            model = job.request.model
            if model not in pipes:
                pipes[model] = load_pipeline(model, device=dev)
            with tqdm(
                total=job.request.steps, unit="step", leave=False, disable=not show, desc=job.id
            ) as steps:
                try:
                    record = run_job(
                        pipes[model],
                        job,
                        out,
                        callback=lambda s: steps.update(1),
                        kept=state_of[job.id][1],
                    )
                except ValueError as e:  # e.g. a LoRA made for another model: this job only
                    failed += 1
                    print(f"{jobs_file}:{job.line}: {e}", file=sys.stderr)
                    continue
                finally:
                    bar.update(1)
            _append(part, record)
    state.wait_for_everyone()
    if state.is_main_process:
        records = merge_manifest(out)
        made = sum(done_and_kept(j, records, out)[0] for j in jobs)
        print(f"done: {made}/{len(jobs)} job(s) in {out / MANIFEST}")
    return 1 if bad or failed else 0
