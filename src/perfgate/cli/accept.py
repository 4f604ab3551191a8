"""``perfgate accept``: cases' figures in a run accepted as their new baseline (a marker in the history)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add", "run"]


def add(commands: Any) -> None:
    accept = commands.add_parser(
        "accept", help="accept cases' figures in a run as their new baseline (a marker in the history)"
    )
    accept.add_argument("cases", nargs="+", help="case ids as compare prints them, e.g. minilm/ort-int8/b1/cpu")
    accept.add_argument("--history", type=Path, required=True, help="the history directory compare reads")
    accept.add_argument("--reason", required=True, help="why: recorded, and quoted when the alert closes")
    accept.add_argument("--run", type=Path, help="the accepted run (default: the history's newest with these cases)")
    accept.add_argument("--who", help="who accepts (default: $GITHUB_ACTOR, git's user.name, the login)")
    accept.add_argument(
        "--into", type=Path, help="write the marker here instead (a directory uploaded with the night's artifact)"
    )


def run(args: argparse.Namespace) -> int:
    import json

    from perfgate.records.history import accept_cases, load_history
    from perfgate.records.results import write_atomically

    history = load_history(args.history)
    acceptance = accept_cases(args.cases, history, args.reason, args.who, args.run)
    stamp = acceptance.when.replace(":", "").replace("-", "").replace("+", "")
    target = (args.into or args.history) / f"accept-{stamp}-{acceptance.key}.json"
    write_atomically(target, json.dumps(acceptance.to_dict(), indent=1))
    print(
        f"wrote {target}: {', '.join(acceptance.cases)} compare with their figures in {acceptance.run} and later "
        f"runs from now on ({acceptance.reason!r}, by {acceptance.who})"
    )
    return 0
