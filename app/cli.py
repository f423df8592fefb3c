"""``dit-studio``: the command line.

Bad input exits with code 2 and one line saying what to change; nothing partial is written.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

from dit.runtime import keep_freed_memory
from pipelines.spec import DEFAULT_AUDIO_MODEL, DEFAULT_MODEL, DEFAULT_VIDEO_MODEL


def _version() -> str:
    try:
        return version("dit-studio")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="dit-studio",
        description="DiT Studio: generate images, videos and sounds with small "
        "diffusion transformers, offline, on a CPU or a GPU.",
    )
    ap.add_argument("--version", action="version", version=f"dit-studio {_version()}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    gen = sub.add_parser(
        "generate",
        help="make an image (PNG), a video (MP4) or a sound (WAV) from a prompt",
        description="Make images, videos or sounds from a prompt; the model decides which. "
        "Each file "
        "carries the settings that made it, so it can be made again exactly. Unset options "
        "use the model's defaults.",
    )
    gen.add_argument("prompt", help='what to make, e.g. "a small red circle on the left"')
    gen.add_argument("--out", default="outputs", help="folder for the files (default: outputs)")
    gen.add_argument(
        "--audio",
        action="store_true",
        help=f"use the bundled text-to-audio model ({DEFAULT_AUDIO_MODEL})",
    )
    gen.add_argument(
        "--video",
        action="store_true",
        help=f"use the bundled text-to-video model ({DEFAULT_VIDEO_MODEL})",
    )
    gen.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"bundled model name or model folder (default: {DEFAULT_MODEL})",
    )
    gen.add_argument("--negative-prompt", default="", help="what to steer away from")
    gen.add_argument(
        "--dtype",
        choices=("auto", "bf16", "fp16", "fp32"),
        default="auto",
        help="SD3 / FLUX.1 folders: compute dtype (default: as the weights are "
        "stored); the studio's own models compute in fp32",
    )
    gen.add_argument("--seed", type=int, help="random seed (default: a fresh one, recorded)")
    gen.add_argument("--steps", type=int, help="sampling steps (more: slower, finer)")
    gen.add_argument("--guidance", type=float, help="classifier-free guidance scale (1 = off)")
    gen.add_argument(
        "--audio-guidance",
        type=float,
        help="audio+video: the audio stream's scale (default: guidance)",
    )
    gen.add_argument("--solver", help="flow: euler, heun or midpoint; masked: the model's decoder")
    gen.add_argument("--width", type=int, help="image width in pixels (multiple of the patch)")
    gen.add_argument("--height", type=int, help="image height in pixels")
    gen.add_argument("--duration", type=float, help="length in seconds (audio, video models)")
    gen.add_argument(
        "--fps",
        type=float,
        help="video frames per second (any; default: the model's training rate)",
    )
    gen.add_argument("--sample-rate", type=int, help="check the audio model's rate (Hz)")
    gen.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="PATH",
        help="apply a LoRA adapter folder (repeat for several)",
    )
    gen.add_argument(
        "--lora-scale",
        action="append",
        type=float,
        default=[],
        metavar="S",
        help="scale of the matching --lora (default 1; repeat in order)",
    )
    gen.add_argument("--num-outputs", type=int, default=1, help="outputs to make (seeds s, s+1..)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")

    ev = sub.add_parser(
        "eval",
        help="score a model against the ground truth of held-out prompts",
        description="Shapes models: generate images for held-out prompts of the procedural "
        "world (including attribute combinations training never saw) and score colour, "
        "shape, size, position and two-object scenes with the world's own scorer; real "
        "renders are scored beside them to show the scorer is right. Digits models: the "
        "accuracy of a classifier trained on the real scans, and a Frechet distance in its "
        "feature space with the real-vs-real distance beside it.",
    )
    ev.add_argument("model", nargs="?", default=DEFAULT_MODEL, help="model name or folder")
    ev.add_argument("--prompts", type=int, default=320, help="held-out prompts (default 320)")
    ev.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
    ev.add_argument("--solver", help="ODE solver (default: the model's)")
    ev.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    ev.add_argument("--fps", type=float, help="video models: frame rate (default: training's)")
    ev.add_argument(
        "--phrasing",
        nargs="+",
        choices=("canonical", "train", "heldout"),
        default=["canonical", "train", "heldout"],
        help="shapes, digits, sounds and motion models: which phrasings of the "
        "world's caption grammar to score "
        "(default all three, side by side on the same scenes and seeds)",
    )

    batch = sub.add_parser(
        "batch",
        help="run a JSONL file of requests: resumable, exactly once, any number of processes",
        description="Run one request per line of a JSONL file (the same fields as generate: "
        "prompt, model, seed, steps, guidance, solver, width, height, duration, num_outputs, "
        "plus optional id and modality). Invalid lines are reported with their number and the "
        "valid ones still run. Rerun the same command after a crash: finished jobs are skipped "
        "and none is written twice. Spread over processes or GPUs with `accelerate launch "
        "--num_processes N -m app.cli batch ...`.",
    )
    batch.add_argument("jobs", help="the JSONL file, one request per line")
    batch.add_argument("--out", default="outputs/batch", help="folder for outputs + manifest")
    batch.add_argument("--device", help="torch device (default: the process's own, cpu or cuda)")
    batch.add_argument("--quiet", action="store_true", help="no progress bars")

    bench = sub.add_parser(
        "bench",
        help="print speed tables: the DiT core vs diffusers, attention backends",
        add_help=False,
    )
    bench.add_argument("args", nargs=argparse.REMAINDER)
    web = sub.add_parser(
        "app",
        help="start the web studio (Gradio) on this machine",
        description="Start the DiT Studio web app: a tab per modality, live previews, cancel, "
        "a queue, history and replay. Listens on 127.0.0.1 only unless --host says otherwise; "
        "never makes a public share link unless --share is given.",
    )
    web.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; 0.0.0.0 exposes it to your network)",
    )
    web.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    web.add_argument("--auth", help="require a login, given as user:password")
    web.add_argument("--share", action="store_true", help="also open a public Gradio link")
    web.add_argument("--models-dir", help="also offer every model folder inside this folder")
    web.add_argument("--loras-dir", help="also offer every LoRA adapter folder inside this folder")
    web.add_argument("--outputs", default="outputs", help="where files are written")
    web.add_argument(
        "--max-side",
        type=int,
        default=256,
        help="the largest width or height a request may ask for (default 256; "
        "1024 for SD3 / FLUX.1 folders at their own size)",
    )
    web.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="jobs run at once (default 1: one job already uses every core)",
    )
    web.add_argument("--max-queue", type=int, default=64, help="waiting jobs before refusing")
    web.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")

    sub.add_parser("models", help="list the bundled models: modality, size, defaults")
    train = sub.add_parser("train", help="train a model from a recipe", add_help=False)
    train.add_argument("args", nargs=argparse.REMAINDER)
    return ap


def generate(args: argparse.Namespace) -> int:
    from pipelines.request import Request, RequestError

    if args.audio and args.video:
        print("dit-studio generate: give --audio or --video, not both", file=sys.stderr)
        return 2
    model = args.model
    if args.model == DEFAULT_MODEL and (args.audio or args.video):
        model = DEFAULT_AUDIO_MODEL if args.audio else DEFAULT_VIDEO_MODEL
    if not args.prompt.strip():
        print(
            "dit-studio generate: the prompt is empty: say what to make, for example "
            '"a small red circle on the left"',
            file=sys.stderr,
        )
        return 2
    if len(args.lora_scale) > len(args.lora):
        print(
            "dit-studio generate: more --lora-scale than --lora: give one scale per adapter",
            file=sys.stderr,
        )
        return 2
    scales = args.lora_scale + [1.0] * (len(args.lora) - len(args.lora_scale))
    try:
        request = Request(
            prompt=args.prompt,
            negative_prompt=args.negative_prompt,
            seed=args.seed,
            steps=args.steps,
            guidance=args.guidance,
            solver=args.solver,
            width=args.width,
            height=args.height,
            num_outputs=args.num_outputs,
            model=model,
            duration=args.duration,
            sample_rate=args.sample_rate,
            fps=args.fps,
            audio_guidance=args.audio_guidance,
            loras=tuple(zip(args.lora, scales, strict=True)),
        )
        from pipelines.registry import load_pipeline

        pipe = load_pipeline(model, dtype=args.dtype)
        request = pipe.resolve(request)
        pipe.use_loras(request.loras)
    except (RequestError, FileNotFoundError, ValueError) as e:
        print(f"dit-studio generate: {e}", file=sys.stderr)
        return 2
    from tqdm.auto import tqdm

    revised = pipe.rewrite([request.prompt])[0]
    if revised != request.prompt and not args.quiet:  # say what the model reads
        print(f"revised prompt: {revised}", file=sys.stderr)
    with tqdm(total=request.steps, disable=args.quiet, unit="step", desc="sampling") as bar:
        outputs = pipe(request, callback=lambda s: bar.update(1))
    for path in pipe.save(outputs, args.out):
        print(path)
    return 0


def run_batch_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    if not Path(args.jobs).is_file():
        print(
            f"dit-studio batch: {args.jobs} is not a file: give a JSONL file of requests",
            file=sys.stderr,
        )
        return 2
    from .batch import run_batch

    return run_batch(args.jobs, args.out, device=args.device, quiet=args.quiet)


def evaluate(args: argparse.Namespace) -> int:
    from pipelines.registry import load_pipeline
    from pipelines.request import RequestError

    try:
        pipe = load_pipeline(args.model)
        from training.evaluate import evaluate as score

        scores = score(
            pipe,
            args.prompts,
            tuple(args.phrasing),
            steps=args.steps,
            solver=args.solver,
            guidance=args.guidance,
            fps=args.fps,
        )
    except (RequestError, FileNotFoundError, ValueError) as e:
        print(f"dit-studio eval: {e}", file=sys.stderr)
        return 2
    defaults = pipe.spec.request_defaults()
    solver = args.solver or defaults["solver"]
    steps = args.steps or defaults["steps"]
    guidance = args.guidance if args.guidance is not None else defaults["guidance"]
    print(
        f"model {args.model}: {args.prompts} held-out prompts, {steps} {solver} steps, "
        f"guidance {guidance}"
    )
    print(score_table(scores, tuple(args.phrasing)))
    return 0


def score_table(scores: dict, phrasings: tuple[str, ...]) -> str:
    """A markdown table; keys "<phrasing> <metric>" become one row per metric with a column
    per phrasing (then "real" and anything else as rows of their own)."""
    columns = [c for c in ("gen", *phrasings, "real") if any(k.startswith(f"{c} ") for k in scores)]
    rows: dict[str, dict[str, object]] = {}
    for k, v in scores.items():
        col = next((c for c in columns if k.startswith(f"{c} ")), "")
        metric = k[len(col) + 1 :] if col else k
        rows.setdefault(metric, {})[col or "value"] = v
    columns = columns or ["value"]
    if any("value" in r for r in rows.values()) and "value" not in columns:
        columns.append("value")

    def cell(v) -> str:
        return "" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)

    lines = [f"| metric | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {m} | {' | '.join(cell(r.get(c)) for c in columns)} |" for m, r in rows.items()]
    return "\n".join(lines)


def serve(args: argparse.Namespace) -> int:
    auth = None
    if args.auth is not None:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            print("dit-studio app: --auth must be user:password", file=sys.stderr)
            return 2
        auth = (user, password)
    if args.concurrency < 1 or args.max_queue < 1:
        print("dit-studio app: --concurrency and --max-queue must be >= 1", file=sys.stderr)
        return 2
    if not 8 <= args.max_side <= 8192:
        print("dit-studio app: --max-side must be between 8 and 8192 pixels", file=sys.stderr)
        return 2
    from dataclasses import replace

    from .studio import SERVER_LIMITS, Studio

    limits = replace(
        SERVER_LIMITS,
        max_side=args.max_side,
        max_pixels=max(SERVER_LIMITS.max_pixels, args.max_side**2),
    )
    try:
        studio = Studio(
            models_dir=args.models_dir,
            outputs_dir=args.outputs,
            device=args.device,
            loras_dir=args.loras_dir,
            limits=limits,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"dit-studio app: {e}", file=sys.stderr)
        return 2
    from .web import launch

    launch(studio, args.host, args.port, auth, args.share, args.concurrency, args.max_queue)
    return 0


def models_table() -> str:
    """One row per bundled model, read from its model_index.json and model card alone (no
    torch), then each model's measured scores against its targets."""
    from pipelines.cards import read_card
    from pipelines.spec import ASSETS, ModelSpec, bundled_models

    rows = [("model", "modality", "objective", "size", "MB", "defaults", "quality")]
    scores = []
    for name in bundled_models():
        folder = ASSETS / name
        _, spec = ModelSpec.read(folder)
        size = f"{spec.width} x {spec.height}" if spec.modality != "audio" else ""
        if spec.seconds:
            size = (size + ", " if size else "") + f"{spec.seconds:g} s"
        if spec.fps:
            size += f" at {spec.fps:g} fps"
        mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6
        d = spec.request_defaults()
        defaults = f"{d['steps']} steps, guidance {d['guidance']:g}, {d['solver']}"
        card = read_card(folder)
        rows.append(
            (name, spec.modality, spec.objective, size, f"{mb:.1f}", defaults, card.verdict())
        )
        mark = {True: "", False: " (not met)", None: ""}
        scores += (
            [
                f"{name}: "
                + ", ".join(
                    f"{s.metric} {s.value}" + (f" / {s.target}" if s.target else "") + mark[s.met]
                    for s in card.scores
                )
            ]
            if card.scores
            else []
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
    return table + "\n\nmeasured / target:\n" + "\n".join(scores) if scores else table


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()  # a third faster on CPU; see dit/runtime.py
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("bench", "train"):
        # Their own parsers read the rest: argparse's REMAINDER refuses a first argument that
        # looks like an option ("dit-studio train -h" would be an error, not train's help).
        return _forward(argv[0], argv[1:])
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.command == "generate":
        return generate(args)
    if args.command == "batch":
        return run_batch_command(args)
    if args.command == "eval":
        return evaluate(args)
    if args.command == "app":
        return serve(args)
    if args.command == "models":
        print(models_table())
        return 0
    ap.print_help()
    return 0


def _forward(command: str, rest: list[str]) -> int:
    """``dit-studio bench ...`` and ``dit-studio train ...``: the rest to their own parsers."""
    if command == "bench":
        from benchmarks.__main__ import main as bench_main

        bench_main(rest)
        return 0
    from training.__main__ import main as train_main

    return train_main(rest)


if __name__ == "__main__":
    sys.exit(main())
