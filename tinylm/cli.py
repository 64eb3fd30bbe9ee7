"""The `tinylm` command line: backends, generate, chat, embed, batch, info, doctor, cache.

Plugins add subcommands through the `register_commands` hook. Errors tinylm raises on purpose
are printed as one line (`error: ...` with the fix) and exit with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, settings

__all__ = ["main", "build_parser"]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", help="backend name (default: TINYLM_BACKEND, else the best available)")
    p.add_argument("--device", help="device of the backend (default: TINYLM_DEVICE, else the backend's first)")
    p.add_argument("--precision", help="fp32, bf16, fp16, int8, int4 (where the backend offers it)")


def _add_sampling(p: argparse.ArgumentParser) -> None:
    """One flag per `GenerationOptions` field (`--top-k` for top_k), typed and documented by the field."""
    from .options import GenerationOptions

    for f in dataclasses.fields(GenerationOptions):
        flag, kind, help = "--" + f.name.replace("_", "-"), f.metadata["cli"], f.metadata["help"]
        if kind is bool:
            p.add_argument(flag, action="store_const", const=True, default=None, help=help)
        elif f.metadata["repeat"]:
            p.add_argument(flag, action="append", type=kind, default=None, help=help)
        else:
            p.add_argument(flag, type=kind, default=None, help=help)
    p.add_argument("--stats", action="store_true", help="print token counts and speed to stderr")


def _add_structured(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json-schema", metavar="FILE", help="constrain the output to this JSON schema")
    group.add_argument("--regex", help="constrain the output to this regular expression")
    group.add_argument("--choice", action="append", help="constrain the output to one of these (repeatable)")


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    """The generation keywords of `Model.stream`: `options` (checked here, before the model loads) and a
    `response_format` when one was asked for."""
    from .options import OPTION_NAMES, GenerationOptions

    options: dict[str, Any] = {"options": GenerationOptions(**{k: getattr(args, k) for k in OPTION_NAMES})}
    if getattr(args, "json_schema", None):
        from .errors import ConstraintError

        try:
            options["response_format"] = json.loads(open(args.json_schema, encoding="utf-8").read())
        except (OSError, ValueError) as e:
            raise ConstraintError(
                f"cannot read the JSON schema {args.json_schema}: {e}. Fix: pass a JSON file."
            ) from None
    elif getattr(args, "regex", None):
        import re

        options["response_format"] = re.compile(args.regex)
    elif getattr(args, "choice", None):
        options["response_format"] = args.choice
    return options


def _load(args: argparse.Namespace) -> Any:
    from .model import load

    return load(args.model, backend=args.backend, device=args.device, precision=args.precision)


def _print_stats(model: Any, usage: Any) -> None:
    print(
        f"[{model.backend}/{model.device}/{model.precision}] prompt {usage.prompt_tokens} tok, "
        f"completion {usage.completion_tokens} tok, first token {usage.time_to_first_token * 1000:.0f} ms, "
        f"{usage.tokens_per_second:.1f} tok/s"
        + (
            f", speculative {usage.speculative_accepted}/{usage.speculative_proposed} accepted"
            if usage.speculative_proposed
            else ""
        ),
        file=sys.stderr,
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _load_option(text: str) -> tuple[str, Any]:
    """KEY=VALUE, a backend's load option (`tinylm.load(..., KEY=VALUE)`): true/false, none, an integer or a
    number, else the text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. --option spin_wait=true)")
    words = {"true": True, "false": False, "none": None}
    if raw.lower() in words:
        return key, words[raw.lower()]
    for kind in (int, float):
        try:
            return key, kind(raw)
        except ValueError:
            pass
    return key, raw


# commands ----------------------------------------------------------------------------------------


def cmd_backends(args: argparse.Namespace) -> int:
    from .plugins import get_manager

    manager = get_manager()
    rows = []
    for name, backend in sorted(manager.backends().items()):
        av = manager.availability(backend)
        status = "available" if av.ok else ("convert-only" if av.convert_only else "unavailable")
        rows.append(
            {
                "name": name,
                "status": status,
                "version": backend.version,
                "devices": manager.devices(backend) if av.ok or av.convert_only else [],
                "precisions": list(backend.capabilities.precisions),
                "kinds": list(backend.capabilities.kinds),
                "priority": backend.capabilities.priority,
                "plugin": manager.backend_plugin(name),
                "reason": "" if av.ok else av.explain(),
            }
        )
    manager.models()  # a failing register_models hook is a plugin error too
    errors = [{"plugin": e.plugin, "error": str(e)} for e in manager.errors]
    settings_errors = [str(e) for e in manager.config_errors]
    if args.json:
        print(json.dumps({"backends": rows, "plugin_errors": errors, "settings_errors": settings_errors}, indent=2))
        return 0
    if not rows:
        from .install import install_command

        print(f"no backends registered. Fix: {install_command('onnx')} (or another backend: torch, openvino, coreml).")
    cells = [[r["name"], r["status"], f"v{r['version']}", f"devices={','.join(r['devices']) or '-'}"] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)] if cells else []
    for r, row in zip(rows, cells):
        print(" ".join(c.ljust(w) for c, w in zip(row, widths)), f"precisions={','.join(r['precisions'])}")
        if r["reason"]:
            print(" " * (widths[0] + 1) + r["reason"])
    for e in errors:
        print(f"plugin error: {e['error']}")
    for text in settings_errors:
        print(f"setting error: {text}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    prompt = args.prompt if args.prompt not in (None, "-") else sys.stdin.read()
    options = _sampling(args)
    with _load(args) as model:
        usage = None
        for chunk in model.stream(prompt, **options):
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
            usage = chunk.usage or usage
        sys.stdout.write("\n")
        if args.stats and usage:
            _print_stats(model, usage)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    options = _sampling(args)
    with _load(args) as model:
        messages: list[dict[str, str]] = []
        if args.system:
            messages.append({"role": "system", "content": args.system})
        interactive = sys.stdin.isatty()
        if interactive:
            print(
                f"chatting with {model.path.name} on {model.backend}/{model.device} "
                "— /reset clears, /exit or Ctrl-D quits"
            )
        while True:
            if interactive:
                sys.stdout.write("> ")
                sys.stdout.flush()
            line = sys.stdin.readline()
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                break
            if text == "/reset":
                messages = messages[:1] if args.system else []
                continue
            messages.append({"role": "user", "content": text})
            reply, usage = [], None
            for chunk in model.stream_chat(messages, **options):
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
                reply.append(chunk.text)
                usage = chunk.usage or usage
            sys.stdout.write("\n")
            messages.append({"role": "assistant", "content": "".join(reply)})
            if args.stats and usage:
                _print_stats(model, usage)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    with _load(args) as model:
        vectors = model.embed(texts, normalize=not args.no_normalize)
    for text, vec in zip(texts, vectors):
        print(json.dumps({"text": text, "embedding": [round(float(x), 6) for x in vec]}))
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import BatchJob, Progress, run_local

    job = BatchJob(
        model=args.model,
        input=Path(args.input),
        output=Path(args.output),
        task=args.task,
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        generation={} if args.task == "embed" else _sampling(args),
        normalize=not args.no_normalize,
        batch_size=args.batch_size,
    )

    def progress(total: int, done: int) -> Progress:
        if done:
            print(f"resuming: {done} of {total} rows already in {job.output}", file=sys.stderr)
        return Progress(total=total, done=done, enabled=not args.no_progress)

    if args.ray is None:
        report = run_local(job, on_start=progress)
    else:
        from .ray import run_on_ray  # raises RayUnavailable with the fix when Ray is not installed

        report = run_on_ray(
            job, address=args.ray or None, workers=args.workers, threads=args.threads, on_start=progress
        )
    print(
        f"{report.written} rows written to {job.output} in {report.seconds:.1f} s "
        f"({report.skipped} already there, {report.rows} in the input)",
        file=sys.stderr,
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .arch import expected_shapes
    from .plugins import get_manager
    from .resolve import resolve_model
    from .source import ModelFolder

    folder = ModelFolder(resolve_model(args.model, get_manager()))
    spec = folder.spec
    params = sum(math.prod(shape) for shape in expected_shapes(spec).values())
    info = {
        "path": str(folder.path),
        "family": spec.family,
        "kind": spec.kind,
        "parameters": params,
        "spec": spec.to_dict(),
        "chat_template": bool(folder.tokenizer.chat_template),
        "stop_token_ids": list(folder.stop_token_ids()) if spec.kind == "decoder" else [],
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(f"{folder.path}\n  family {spec.family} ({spec.kind}), {params / 1e6:.2f}M parameters")
        print(
            f"  layers {spec.num_layers}, hidden {spec.hidden_size}, heads {spec.num_heads}/{spec.num_kv_heads} kv, "
            f"head_dim {spec.head_dim}, vocab {spec.vocab_size}, context {spec.max_positions}"
        )
        print(f"  chat template: {'yes' if info['chat_template'] else 'no'}")
    return 0


def _auto_choice(manager: Any, kind: str) -> str:
    """What `tinylm.load` picks for a model of `kind` when nothing is named, and why (before the quality check of a
    lossy precision, which needs the model: a precision that misses the bar gives way to the next one listed)."""
    from .errors import TinyLMError
    from .selection import choose

    try:
        choice = choose(manager, kind=kind)
    except TinyLMError as e:
        return f"none ({e})"
    return f"{choice.backend.name}/{choice.device} {choice.precision}: {choice.reason}"


def cmd_doctor(args: argparse.Namespace) -> int:
    from .plugins import get_manager

    manager = get_manager()
    print(f"tinylm {__version__} on Python {platform.python_version()} ({platform.system()} {platform.machine()})")
    print(f"threads: {settings.num_threads()} (physical cores: {settings.physical_cores()})")
    print(f"cache: {settings.home()}")
    for var in settings.ENV_VARS:
        if os.environ.get(var):
            print(f"{var}={os.environ[var]}")
    print("backends:")
    available = []
    for name, backend in sorted(manager.backends().items()):
        av = manager.availability(backend)
        print(f"  {name}: {av.explain()}")
        if av.ok:
            available.append(name)
    print("automatic choice (no backend or precision named):")
    for kind in ("decoder", "encoder"):
        print(f"  {kind} models: {_auto_choice(manager, kind)}")
    problems: list[Exception] = [*manager.check(), *manager.config_errors]
    for e in problems:
        print(f"problem: {e}")
    if not available:
        from .install import install_command

        print(
            "problem: no backend is available, so no model can run. "
            f"Fix: install a backend, e.g. `{install_command('onnx')}` or `{install_command('torch')}`."
        )
    if not problems and available:
        print("no plugin problems")
    return 1 if problems or not available else 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .model import convert

    out = convert(args.model, backend=args.backend, out=args.out, precision=args.precision)
    print(f"wrote {out} (backend {args.backend}); load it with tinylm.load({str(out)!r})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .server import ServerConfig, serve
    except ImportError as e:
        from .errors import TinyLMError
        from .install import install_command

        raise TinyLMError(f"the server needs FastAPI and uvicorn ({e}). Fix: {install_command('serve')}.") from None
    if args.ray_replicas is not None:
        if args.option:
            from .errors import ConfigError

            raise ConfigError("--option is not passed to Ray replicas. Fix: leave --option out with --ray-replicas.")
        return _serve_on_ray(args)
    from .model import load

    models = {}
    for item in args.models:
        name, sep, ref = item.partition("=")
        if not sep:
            name, ref = "", item
        model = load(ref, backend=args.backend, device=args.device, precision=args.precision, **dict(args.option))
        models[name or (ref if "/" not in ref else model.path.name)] = model
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        logging.getLogger("tinylm").warning(
            "serving on %s without --api-key: anyone who can reach this address can use the models", args.host
        )
    config = ServerConfig(api_key=args.api_key, parallel=args.parallel, max_queue=args.max_queue)
    serve(models, host=args.host, port=args.port, config=config)
    return 0


def _serve_on_ray(args: argparse.Namespace) -> int:
    from .ray import ModelRef, serve_on_ray  # raises RayUnavailable with the fix when Ray is not installed

    refs = []
    for item in args.models:
        name, sep, ref = item.partition("=")
        refs.append(ModelRef(name=name if sep else "", model=ref if sep else item))
    serve_on_ray(
        refs,
        replicas=args.ray_replicas,
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        api_key=args.api_key,
        max_queue=args.max_queue,
        host=args.host,
        port=args.port,
        threads=args.threads,
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import BenchConfig, format_table, plot, run_bench

    config = BenchConfig(
        model=args.model,
        backends=tuple(args.backends or ()),
        precisions=tuple(args.precisions or ()),
        prompt_tokens=args.prompt_tokens,
        new_tokens=args.new_tokens,
        runs=args.runs,
    )
    rows, bandwidth = run_bench(config, progress=lambda msg: print(msg, file=sys.stderr))
    if args.json:
        import dataclasses

        print(json.dumps({"bandwidth_gbs": bandwidth, "rows": [dataclasses.asdict(r) for r in rows]}, indent=2))
    else:
        print(format_table(rows, bandwidth))
    if args.plot:
        plot(rows, args.plot)
    return 0


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def cmd_cache(args: argparse.Namespace) -> int:
    from .artifacts import list_artifacts, list_partial, prune, verify

    if args.action == "prune":
        complete = {a.path for a in list_artifacts()}
        removed = prune(backend=args.backend_name, older_than_days=args.older_than, everything=args.all)
        entries = [p for p in removed if p in complete]
        locks = [p for p in removed if p.suffix == ".lock" and p not in complete]
        unfinished = [p for p in removed if p not in complete and p.suffix != ".lock"]
        print(
            f"removed {_plural(len(entries), 'entry', 'entries')}, "
            f"{_plural(len(unfinished), 'unfinished conversion', 'unfinished conversions')}, "
            f"{_plural(len(locks), 'stale lock file', 'stale lock files')}"
        )
        if not (args.all or args.backend_name or args.older_than is not None):
            kept = len(list_artifacts())
            print(
                f"kept {_plural(kept, 'complete entry', 'complete entries')}; "
                "pass --all, --backend NAME or --older-than DAYS to remove entries"
            )
        return 0
    entries = [a for a in list_artifacts() if not args.backend_name or a.backend == args.backend_name]
    if args.action == "verify":
        bad = 0
        for a in entries:
            problems = verify(a.path)
            bad += bool(problems)
            for problem in problems:
                print(f"damaged: {problem}")
        print(f"verified {_plural(len(entries), 'entry', 'entries')}: {bad} damaged")
        if bad:
            print(
                "Fix: remove the damaged entries with `tinylm cache prune --backend NAME` (or --all); "
                "the next load converts them again.",
                file=sys.stderr,
            )
        return 1 if bad else 0
    for a in entries:
        print(
            f"{a.backend:<10} {a.key}  {a.size / 1e6:8.1f} MB  "
            f"{a.meta.get('precision', '?'):<5} {a.meta.get('source', '')}"
        )
    partial = [p for p in list_partial() if not args.backend_name or p.backend == args.backend_name]
    for p in partial:
        state = "converting now" if p.busy else "orphaned by a conversion that did not finish (prune removes it)"
        print(f"{p.backend:<10} {p.path.name}  {p.size / 1e6:8.1f} MB  {state}")
    print(f"{_plural(len(entries), 'entry', 'entries')} in {settings.home() / 'artifacts'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinylm", description="Small language models on any backend.")
    parser.add_argument("--version", action="version", version=f"tinylm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("backends", help="list backends: available or why not, devices, precisions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backends)

    p = sub.add_parser("generate", help="continue a prompt (streams to stdout)")
    p.add_argument("model")
    p.add_argument("prompt", nargs="?", help="the prompt; '-' or omitted reads stdin")
    _add_common(p)
    _add_sampling(p)
    _add_structured(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("chat", help="interactive streaming chat with the model's chat template")
    p.add_argument("model")
    p.add_argument("--system", help="system message")
    _add_common(p)
    _add_sampling(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("embed", help="sentence embeddings as JSON lines")
    p.add_argument("model")
    p.add_argument("texts", nargs="*", help="texts (default: one per line on stdin)")
    p.add_argument("--no-normalize", action="store_true")
    _add_common(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("batch", help="run a JSON Lines file through a model, resumably; on Ray with --ray")
    p.add_argument("model")
    p.add_argument("input", help="JSON Lines: 'id' (default: line number) and 'prompt' | 'messages' | 'text'")
    p.add_argument("output", help="JSON Lines written one row per id; an existing file is resumed")
    p.add_argument("--task", choices=["generate", "chat", "embed"], required=True)
    p.add_argument("--batch-size", type=_positive, default=16, help="rows per call (and per fsync of the output)")
    p.add_argument("--no-normalize", action="store_true", help="embed: raw pooled vectors")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on Ray Data (pip install tinylm[ray]); without ADDRESS a local Ray cluster is started",
    )
    p.add_argument("--workers", type=_positive, default=1, help="with --ray: model replicas (Ray actors)")
    p.add_argument("--threads", type=_positive, default=1, help="with --ray: threads (CPUs) per worker")
    _add_common(p)
    _add_sampling(p)
    _add_structured(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("info", help="describe a model: family, sizes, template")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "doctor",
        help="check the installation: backends, plugins, settings",
        description="Exits 1 when any plugin hook fails, a plugin setting names no installed plugin, "
        "or no backend is available.",
    )
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("convert", help="convert a model for a backend into a self-contained folder")
    p.add_argument("model")
    p.add_argument("--backend", required=True)
    p.add_argument("--precision")
    p.add_argument("--out", required=True, help="folder to write (must not exist or be empty)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("serve", help="OpenAI-compatible HTTP server (pip install tinylm[serve])")
    p.add_argument("models", nargs="+", metavar="[NAME=]MODEL", help="models to serve, optionally named")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=os.environ.get("TINYLM_API_KEY"), help="require this Bearer token")
    p.add_argument(
        "--parallel",
        type=_positive,
        default=4,
        metavar="N",
        help="requests decoded at once per model, in one continuous batch (default 4; 1: one at a time)",
    )
    p.add_argument("--max-queue", type=int, default=32, help="requests waiting per model before 429")
    p.add_argument(
        "--ray-replicas",
        type=_positive,
        metavar="N",
        help="serve N replicas behind Ray Serve's router (pip install tinylm[ray]; RAY_ADDRESS picks a cluster)",
    )
    p.add_argument("--threads", type=_positive, default=1, help="with --ray-replicas: threads (CPUs) per replica")
    p.add_argument(
        "--option",
        type=_load_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a backend's load option for every model, as tinylm.load takes it (e.g. spin_wait=true); repeatable",
    )
    _add_common(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench", help="measure every backend and precision side by side")
    p.add_argument("model")
    p.add_argument(
        "--backends", nargs="+", help="default: every available backend; 'auto': also a load that names nothing"
    )
    p.add_argument("--precisions", nargs="+", help="default: each backend's precisions")
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up")
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", type=Path, help="write a bar chart PNG (needs matplotlib)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "cache",
        help="list, verify or prune converted artifacts",
        description=(
            "ls: list the cache entries, and what killed conversions left. "
            "verify: re-hash every file of every entry (compiled copies included) against the digests recorded "
            "when it was written; exits 1 if any differs. "
            "prune: always removes what killed conversions left (temporary folders, incomplete entries, "
            "lock files nobody holds); it removes complete entries only with --all (every one), --backend "
            "(that backend's) or --older-than (older than N days)."
        ),
    )
    p.add_argument("action", choices=["ls", "verify", "prune"])
    p.add_argument("--backend", dest="backend_name", help="only this backend's entries")
    p.add_argument("--older-than", type=float, default=None, help="prune: remove entries older than N days")
    p.add_argument("--all", action="store_true", help="prune: remove every cache entry")
    p.set_defaults(func=cmd_cache)

    from .plugins import get_manager

    get_manager().add_commands(sub, _add_common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tinylm` command."""
    from .errors import TinyLMError

    logging.basicConfig(level=logging.WARNING, format="tinylm: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TinyLMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
