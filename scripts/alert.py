#!/usr/bin/env python3
"""Nightly alerting through the ``gh`` CLI: one open issue per regressed technique family.

Reads ``perfgate compare --confirm --json`` output. For each family (the technique of a case) with a
*confirmed* regression: comment on its open issue, or open one (label ``perfgate-regression``). For each
family with an open issue and no regression tonight: comment a clean night, and close the issue after
``--clean-nights`` clean nights in a row. Unconfirmed regressions (one-night blips) never open an issue.

    python scripts/alert.py compare.json --run-url "$RUN_URL" [--clean-nights 3] [--repo owner/name]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

LABEL = "perfgate-regression"
CLEAN_MARK = "perfgate: clean night"


def family(case_id: str) -> str:
    """``model/technique/bN/device`` -> technique: one issue per technique, all its cases in it."""
    parts = case_id.split("/")
    return parts[1] if len(parts) > 1 else case_id


def title(name: str) -> str:
    return f"perfgate: confirmed regression in {name}"


def gh(*args: str, repo: str | None) -> str:
    command = ["gh", *args, *(["--repo", repo] if repo else [])]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def open_issues(repo: str | None) -> dict[str, int]:
    """Family -> number of its open perfgate issue."""
    found = json.loads(gh("issue", "list", "--label", LABEL, "--state", "open", "--json", "number,title", repo=repo))
    prefix = title("")
    return {
        issue["title"].removeprefix(prefix): issue["number"] for issue in found if issue["title"].startswith(prefix)
    }


def clean_streak(number: int, repo: str | None) -> int:
    """Clean-night comments since the last regression comment on the issue."""
    comments = json.loads(gh("issue", "view", str(number), "--json", "comments", repo=repo))["comments"]
    streak = 0
    for comment in reversed(comments):
        if not comment["body"].startswith(CLEAN_MARK):
            break
        streak += 1
    return streak


def regression_body(cases: list[dict[str, Any]], run_url: str) -> str:
    lines = [f"Confirmed on re-measurement in {run_url}:", ""]
    for case in cases:
        moved = ", ".join(
            f"{f['name']} {f['current']:.4g} vs {f['reference']:.4g} [{f['low']:.4g}, {f['high']:.4g}]"
            for f in case["figures"]
            if f["status"] == "regression"
        )
        lines.append(f"- `{case['case_id']}`: {moved or case['detail']}. Reproduce: `{case['reproduce']}`")
    return "\n".join(lines)


def alert(comparison: dict[str, Any], run_url: str, clean_nights: int, repo: str | None) -> list[str]:
    """Act on the comparison; returns what was done, one line per action."""
    confirmed: dict[str, list[dict[str, Any]]] = {}
    for case in comparison["cases"]:
        if case["status"] == "regression" and case.get("confirmed") is True:
            confirmed.setdefault(family(case["case_id"]), []).append(case)
    compared = {family(c["case_id"]) for c in comparison["cases"] if c["status"] not in ("new", "incomparable")}
    issues = open_issues(repo)
    done = []
    for name, cases in sorted(confirmed.items()):
        body = regression_body(cases, run_url)
        if name in issues:
            gh("issue", "comment", str(issues[name]), "--body", body, repo=repo)
            done.append(f"commented on #{issues[name]} ({name})")
        else:
            gh("issue", "create", "--title", title(name), "--label", LABEL, "--body", body, repo=repo)
            done.append(f"opened an issue for {name}")
    for name, number in sorted(issues.items()):
        if name in confirmed or name not in compared:
            continue  # regressed again, or not measured tonight: no evidence either way
        streak = clean_streak(number, repo) + 1
        gh("issue", "comment", str(number), "--body", f"{CLEAN_MARK} {streak}/{clean_nights} ({run_url})", repo=repo)
        done.append(f"clean night {streak}/{clean_nights} on #{number} ({name})")
        if streak >= clean_nights:
            gh("issue", "close", str(number), "--reason", "completed", repo=repo)
            done.append(f"closed #{number} ({name})")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("comparison", type=Path, help="JSON written by perfgate compare --json")
    parser.add_argument("--run-url", default="this run")
    parser.add_argument("--clean-nights", type=int, default=3)
    parser.add_argument("--repo", default=None)
    args = parser.parse_args(argv)
    try:
        comparison = json.loads(args.comparison.read_text())
    except (OSError, json.JSONDecodeError) as error:
        print(f"alert: comparison file {str(args.comparison)!r} is not readable JSON ({error}); "
              "write it with perfgate compare --json", file=sys.stderr)  # fmt: skip
        return 2
    for line in alert(comparison, args.run_url, args.clean_nights, args.repo):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
