"""Scan a tree of Python source files with msgflux and time it against a loop.

Each file becomes a ``dotdict`` message. A worker reads the file, then
``bcast_gather`` runs three steps on the same message at once: ``ast`` parses
it (CPU under the GIL), ``zlib`` compresses it and ``hashlib`` hashes it (C
code that releases the GIL). ``map_gather`` runs the files in batches, each
batch with its own timeout. A file that cannot be read, has a syntax error,
vanishes after it was listed, is binary or runs out of time is reported on its
own line and never stops the run. The same work then runs again in a plain
sequential loop, and the report prints both times.

Run it on the running Python's standard library, or on any folder::

    python examples/corpus_pipeline.py
    python examples/corpus_pipeline.py path/to/project --json results.json

The report goes to stdout. Progress goes to stderr: a tqdm bar on a terminal
when tqdm is installed (``pip install tqdm``), plain log lines otherwise.
"""

from __future__ import annotations

import argparse
import ast
import errno
import fnmatch
import hashlib
import io
import json
import logging
import os
import stat
import sys
import sysconfig
import time
import tokenize
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import msgflux
import msgflux.nn.functional as F
from msgflux import TaskError, dotdict

logger = logging.getLogger("corpus_pipeline")

# Directories skipped in the default corpus: installed third-party packages
# are not part of the standard library's source.
THIRD_PARTY_DIRS = frozenset({"site-packages", "dist-packages"})
ALWAYS_SKIPPED_DIRS = frozenset({"__pycache__"})

STATUSES = (
    "ok", "syntax_error", "binary", "unreadable", "vanished", "timeout", "failed",
)


class BinaryFileError(ValueError):
    """Raised when a file contains NUL bytes, so it cannot be source text."""


# ---------------------------------------------------------------------------
# The corpus


def default_corpus() -> Path:
    """Return the standard library source folder of the running Python."""
    return Path(sysconfig.get_paths()["stdlib"])


def find_files(root: Path, pattern: str, skip_dirs: Iterable[str] = ()) -> List[Path]:
    """List the files under ``root`` whose names match ``pattern``, sorted.

    Symbolic links to files are listed, and a broken or looping link is later
    reported as a vanished or unreadable file. Links to folders are not
    followed, so a link cycle cannot make the walk endless.
    """
    skipped = ALWAYS_SKIPPED_DIRS | frozenset(skip_dirs)
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if name not in skipped)
        found.extend(
            Path(folder, name) for name in names if fnmatch.fnmatch(name, pattern)
        )
    return sorted(found)


def new_message(path: Path, root: Path) -> Any:
    """Build the message that carries one file through the pipeline."""
    return dotdict(path=str(path), name=str(path.relative_to(root)), status="pending")


# ---------------------------------------------------------------------------
# The steps. Each step writes to its own top-level key of the shared message,
# so the three can run at once on one message without losing a write.


def decode_source(data: bytes) -> str:
    """Decode Python source bytes with the encoding their cookie declares.

    Bytes that do not decode are a syntax error, as they are for the Python
    compiler. Only NUL bytes, which no source text contains, mark a file as
    binary.

    Raises:
        BinaryFileError: If the bytes contain NUL.
        SyntaxError: If the cookie names an unknown encoding or the bytes do
            not decode.
    """
    if b"\0" in data:
        raise BinaryFileError("binary file: contains NUL bytes")
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise SyntaxError(
            f"invalid {encoding} at byte {exc.start}: {exc.reason}"
        ) from exc


def parse_source(msg: Any) -> None:
    """Parse the file with ``ast`` and count its lines, functions and classes."""
    text = decode_source(msg.data)
    tree = ast.parse(text, filename=msg.name)
    functions = classes = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions += 1
        elif isinstance(node, ast.ClassDef):
            classes += 1
    lines = text.count("\n") + (not text.endswith("\n") and bool(text))
    msg.ast = dotdict(lines=lines, functions=functions, classes=classes)


def compress_source(msg: Any) -> None:
    """Compress the file's bytes with zlib at its default level."""
    msg.set("zlib.size", len(zlib.compress(msg.data)))


def hash_source(msg: Any) -> None:
    """Hash the file's bytes with SHA-256."""
    msg.sha256 = hashlib.sha256(msg.data).hexdigest()


STEPS: Tuple[Callable[[Any], None], ...] = (parse_source, compress_source, hash_source)

# A step runner calls every step on one message and returns one item per step:
# None for a step that succeeded, else the exception it raised.
StepRunner = Callable[[Sequence[Callable[[Any], None]], Any], List[Optional[BaseException]]]


def run_steps_gathered(steps: Sequence[Callable[[Any], None]], msg: Any) -> list:
    """Run the steps at once on the shared message with ``bcast_gather``."""
    outcomes = F.bcast_gather(steps, msg)
    return [o.exception if isinstance(o, TaskError) else None for o in outcomes]


def run_steps_in_order(steps: Sequence[Callable[[Any], None]], msg: Any) -> list:
    """Run the steps one after another in the calling thread."""
    errors: List[Optional[BaseException]] = []
    for step in steps:
        try:
            step(msg)
        except Exception as exc:
            errors.append(exc)
        else:
            errors.append(None)
    return errors


def classify(exc: BaseException) -> str:
    """Return the status that names a failure's kind."""
    # TimeoutError is a subclass of OSError, so it is tested first.
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, FileNotFoundError):
        return "vanished"
    if isinstance(exc, OSError):
        return "unreadable"
    if isinstance(exc, BinaryFileError):
        return "binary"
    if isinstance(exc, SyntaxError):
        return "syntax_error"
    return "failed"


def describe(exc: BaseException) -> str:
    """Return a one-line description of a failure for the report."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"{exc.msg} (line {exc.lineno})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def mark_failed(msg: Any, exc: BaseException) -> None:
    msg.status = classify(exc)
    msg.error = describe(exc)


def read_regular_file(path: str) -> bytes:
    """Read a file's bytes, rejecting FIFOs, devices and sockets.

    Raises:
        OSError: If the file cannot be opened or is not a regular file.
    """
    # O_NONBLOCK keeps open() from waiting for a writer when the path is a FIFO.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return file.read()


def process_file(msg: Any, run_steps: StepRunner) -> Any:
    """Read one file and run every step on it, recording failures in the message."""
    started = time.perf_counter()
    try:
        msg.data = read_regular_file(msg.path)
    except OSError as exc:
        mark_failed(msg, exc)
    else:
        msg.size = len(msg.data)
        errors = run_steps(STEPS, msg)
        failures = [exc for exc in errors if exc is not None]
        if failures:
            mark_failed(msg, failures[0])
        else:
            msg.status = "ok"
        del msg["data"]
    msg.seconds = time.perf_counter() - started
    return msg


# ---------------------------------------------------------------------------
# The two runs


class Progress:
    """Count processed files on a tqdm bar, or in log lines every tenth."""

    def __init__(self, total: int, label: str, use_bar: bool) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.next_log = 0
        self.bar = None
        if use_bar:
            try:
                from tqdm import tqdm
            except ImportError:
                logger.info("tqdm is not installed, so progress is logged; pip install tqdm for a bar")
            else:
                self.bar = tqdm(total=total, desc=label, unit="file", file=sys.stderr)

    def advance(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
        elif self.done >= self.next_log or self.done == self.total:
            logger.info("%s: %d of %d files", self.label, self.done, self.total)
            self.next_log = self.done + max(1, self.total // 10)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_with_msgflux(
    paths: Sequence[Path],
    root: Path,
    batch_size: int,
    batch_timeout: float,
    progress: Progress,
) -> List[Any]:
    """Process the files in batches with ``map_gather``, one timeout per batch."""
    results: List[Any] = []
    for start in range(0, len(paths), batch_size):
        batch = [new_message(path, root) for path in paths[start:start + batch_size]]
        # NOTE: ast.parse holds the GIL for the whole parse, so a batch whose
        # deadline passes during a huge file's parse returns when it ends.
        outcomes = F.map_gather(
            process_file,
            args_list=[(msg, run_steps_gathered) for msg in batch],
            timeout=batch_timeout,
        )
        for msg, outcome in zip(batch, outcomes):
            if isinstance(outcome, TaskError):
                # A timed-out task may still be writing to `msg`, so its
                # report goes into a fresh message instead.
                msg = new_message(Path(msg.path), root)
                mark_failed(msg, outcome.exception)
            results.append(msg)
        progress.advance(len(batch))
    return results


def run_in_loop(paths: Sequence[Path], root: Path, progress: Progress) -> List[Any]:
    """Process the files one by one in a plain loop: the baseline."""
    results = []
    for path in paths:
        results.append(process_file(new_message(path, root), run_steps_in_order))
        progress.advance(1)
    return results


# ---------------------------------------------------------------------------
# The report


def summarize(results: Sequence[Any]) -> Dict[str, Any]:
    counts = {status: 0 for status in STATUSES}
    totals = dict(bytes=0, compressed=0, lines=0, functions=0, classes=0)
    for msg in results:
        counts[msg.status] = counts.get(msg.status, 0) + 1
        totals["bytes"] += msg.get("size", 0)
        if "zlib" in msg:
            totals["compressed"] += msg.zlib.size
        if "ast" in msg:
            totals["lines"] += msg.ast.lines
            totals["functions"] += msg.ast.functions
            totals["classes"] += msg.ast.classes
    return dict(files=len(results), statuses=counts, **totals)


def compare_runs(first: Sequence[Any], second: Sequence[Any]) -> List[str]:
    """Return the names of files whose status or hash differ between two runs."""
    return [
        a.name
        for a, b in zip(first, second)
        if a.status != b.status or a.get("sha256") != b.get("sha256")
    ]


def print_report(
    root: Path,
    results: Sequence[Any],
    timing: Dict[str, Optional[float]],
    mismatches: Optional[List[str]],
    slowest: int,
    out: Any = sys.stdout,
) -> None:
    summary = summarize(results)
    mib = summary["bytes"] / 2**20
    print(f"corpus: {root} ({summary['files']} files, {mib:.1f} MiB)", file=out)
    print("", file=out)
    print("| status | files |", file=out)
    print("|---|---:|", file=out)
    for status, count in summary["statuses"].items():
        print(f"| {status} | {count} |", file=out)
    print("", file=out)

    ratio = summary["compressed"] / summary["bytes"] if summary["bytes"] else 0.0
    print(
        f"parsed: {summary['lines']} lines, {summary['functions']} functions, "
        f"{summary['classes']} classes; zlib output is {ratio:.1%} of the input",
        file=out,
    )
    print("", file=out)

    print("| run | seconds | files/s |", file=out)
    print("|---|---:|---:|", file=out)
    for label, seconds in timing.items():
        if seconds is not None:
            rate = summary["files"] / seconds if seconds else 0.0
            print(f"| {label} | {seconds:.2f} | {rate:.0f} |", file=out)
    loop, parallel = timing.get("plain loop"), timing.get("msgflux")
    if loop and parallel:
        print(f"\nmsgflux vs plain loop: {loop / parallel:.2f}x", file=out)
    if mismatches:
        print(f"runs disagree on {len(mismatches)} files: {mismatches[:5]}", file=out)
    elif mismatches is not None:
        print("both runs agree on every file's status and SHA-256", file=out)

    print(f"\nslowest {slowest} files (msgflux run, seconds per file):", file=out)
    for msg in sorted(results, key=lambda m: m.get("seconds", 0.0), reverse=True)[
        :slowest
    ]:
        print(f"  {msg.get('seconds', 0.0):8.3f}  {msg.name}", file=out)

    failures = [msg for msg in results if msg.status != "ok"]
    print(f"\nfailures: {len(failures)}", file=out)
    for msg in failures:
        print(f"  {msg.status:<12}  {msg.name}: {msg.error}", file=out)


def write_json(
    path: Path,
    root: Path,
    results: Sequence[Any],
    timing: Dict[str, Optional[float]],
) -> None:
    document = {
        "root": str(root),
        "summary": summarize(results),
        "timing_seconds": timing,
        "files": [msg.to_dict() for msg in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------
# Command line


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Parse, compress and hash every source file in a folder with "
        "msgflux, then time a plain loop over the same work.",
    )
    parser.add_argument(
        "root", nargs="?", type=Path,
        help="folder to scan (default: the running Python's standard library, "
        "without site-packages)",
    )
    parser.add_argument(
        "--glob", default="*.py", help="file name pattern to scan (default: *.py)"
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="write every file's result to PATH"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=16,
        help="files per map_gather call (default: 16). Larger batches keep more "
        "parsed trees alive at once, and the garbage collector pays for that",
    )
    parser.add_argument(
        "--batch-timeout", type=positive_float, default=60.0,
        help="seconds each batch may take before its unfinished files are "
        "reported as timed out (default: 60)",
    )
    parser.add_argument(
        "--workers", type=positive_int,
        help="msgflux worker thread limit (default: msgflux's own)",
    )
    parser.add_argument(
        "--slowest", type=int, default=10, help="slowest files to list (default: 10)"
    )
    parser.add_argument(
        "--no-loop", action="store_true", help="skip the plain sequential loop"
    )
    parser.add_argument(
        "--progress", choices=("auto", "bar", "log"), default="auto",
        help="progress display: a tqdm bar, log lines, or auto (a bar on a terminal)",
    )
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    root = args.root if args.root is not None else default_corpus()
    if not root.is_dir():
        logger.error("corpus folder not found: %s", root)
        return 2
    skip_dirs = THIRD_PARTY_DIRS if args.root is None else ()
    paths = find_files(root, args.glob, skip_dirs)
    if not paths:
        logger.error("no files match %r under %s", args.glob, root)
        return 2
    if args.workers is not None:
        msgflux.configure(max_workers=args.workers)
    use_bar = args.progress == "bar" or (
        args.progress == "auto" and sys.stderr.isatty()
    )
    logger.info("scanning %d files under %s", len(paths), root)

    progress = Progress(len(paths), "msgflux", use_bar)
    started = time.perf_counter()
    results = run_with_msgflux(paths, root, args.batch_size, args.batch_timeout, progress)
    timing: Dict[str, Optional[float]] = {"msgflux": time.perf_counter() - started}
    progress.close()

    mismatches = None
    if not args.no_loop:
        progress = Progress(len(paths), "plain loop", use_bar)
        started = time.perf_counter()
        loop_results = run_in_loop(paths, root, progress)
        timing["plain loop"] = time.perf_counter() - started
        progress.close()
        mismatches = compare_runs(results, loop_results)

    print_report(root, results, timing, mismatches, args.slowest)
    if args.json is not None:
        write_json(args.json, root, results, timing)
        logger.info("wrote %d file results to %s", len(results), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
