"""Run one workload with one peer in this process and write the result as JSON.

``run.py`` starts one worker process per (workload, peer) cell, so no peer
inherits another's threads, loops or memory. Run by hand for one cell::

    python benches/worker.py --workload W1-10k --peer msgflux --out result.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback

from peers import PEER_NAMES, NotApplicable, make_peer
from workloads import SETTINGS, WORKLOADS, Deadlock, sized_workers


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    parser.add_argument("--peer", required=True, choices=PEER_NAMES)
    parser.add_argument("--mode", default="full", choices=sorted(SETTINGS))
    parser.add_argument("--runs", type=int, default=5, help="measured runs (default: 5)")
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the untimed first run"
    )
    parser.add_argument(
        "--budget", type=float, default=30.0,
        help="seconds after which runs stop early, after the third (default: 30)",
    )
    parser.add_argument(
        "--min-seconds", type=float, default=1.0,
        help="seconds that short runs repeat to fill, past --runs (default: 1)",
    )
    parser.add_argument(
        "--deadlock-after", type=float, default=20.0,
        help="seconds after which a nested run counts as deadlocked (default: 20)",
    )
    parser.add_argument("--out", required=True, help="path of the JSON result file")
    return parser.parse_args()


def run_cell(args: argparse.Namespace) -> dict:
    settings = SETTINGS[args.mode][args.workload]
    options = dict(
        runs=args.runs,
        warmup=not args.no_warmup,
        budget=args.budget,
        min_seconds=args.min_seconds,
        deadlock_after=args.deadlock_after,
    )
    result = dict(workload=args.workload, peer=args.peer, label=args.peer, rows=[])
    try:
        peer = make_peer(args.peer, sized_workers(args.workload, settings))
    except ImportError as exc:
        return dict(result, status="missing", reason=f"cannot import: {exc}")
    result["label"] = peer.name
    try:
        result["rows"] = WORKLOADS[args.workload](peer, settings, options)
    except NotApplicable as exc:
        result.update(status="n/a", reason=str(exc))
    except Deadlock as exc:
        result.update(status="deadlock", reason=str(exc))
    except Exception as exc:
        traceback.print_exc()
        result.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    else:
        result["status"] = "ok"
    if result["status"] != "deadlock":
        try:
            peer.close()
        except Exception:
            traceback.print_exc()
    return result


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args()
    result = run_cell(args)
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(result, out)
    sys.stdout.flush()
    sys.stderr.flush()
    # Threads left behind on purpose (a deadlocked pool, a task abandoned at
    # its deadline) must not delay the exit, so skip interpreter shutdown.
    os._exit(0)


if __name__ == "__main__":
    main()
