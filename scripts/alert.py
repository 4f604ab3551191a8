#!/usr/bin/env python3
"""Nightly alerting through the ``gh`` CLI: one open issue per regressed technique family.

Reads ``perfgate compare --confirm --json`` output. For each family (the technique of a case) with a
*confirmed* regression or failure (no result: a crash, OOM, timeout): comment on its open issue, or open
one (label ``perfgate-regression``, created when the repository lacks it; assigned and @-mentioned as
configured). A family whose open issue predates an acceptance of its cases (``perfgate accept``) is
closed, quoting the reason. For each family with an open issue and no regression tonight: comment a
clean night, and close the issue after ``--clean-nights`` clean nights in a row. Unconfirmed
regressions (one-night blips) never open an issue.

    python scripts/alert.py compare.json --run-url "$RUN_URL" [--clean-nights 3] [--repo owner/name]
        [--assignee LOGIN ...] [--mention @team ...]

Assignees and mentions may also come as comma- or space-separated lists in PERFGATE_ALERT_ASSIGNEES and
PERFGATE_ALERT_MENTIONS (a workflow passes repository variables there).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LABEL = "perfgate-regression"
LABEL_COLOR = "B60205"
LABEL_DESCRIPTION = "A confirmed performance regression found by perfgate's nightly comparison"
CLEAN_MARK = "perfgate: clean night"
ALERTING = ("regression", "failed")  # compare's statuses that open an issue once confirmed


def family(case_id: str) -> str:
    """``model/technique/bN/device`` -> technique: one issue per technique, all its cases in it."""
    parts = case_id.split("/")
    return parts[1] if len(parts) > 1 else case_id


def title(name: str) -> str:
    return f"perfgate: confirmed regression in {name}"


def gh(*args: str, repo: str | None) -> str:
    command = ["gh", *args, *(["--repo", repo] if repo else [])]
    try:
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout
    except subprocess.CalledProcessError as error:
        raise AlertError(f"{' '.join(command[:3])} failed: {error.stderr.strip() or error}") from None


class AlertError(Exception):
    """A ``gh`` call that failed: the message carries gh's own words."""


def ensure_label(repo: str | None) -> None:
    """The real ``gh issue create`` refuses a label the repository lacks: create (or refresh) it first."""
    gh("label", "create", LABEL, "--force", "--color", LABEL_COLOR, "--description", LABEL_DESCRIPTION, repo=repo)


def open_issues(repo: str | None) -> dict[str, dict[str, Any]]:
    """Family -> its open perfgate issue (number, createdAt)."""
    found = json.loads(
        gh("issue", "list", "--label", LABEL, "--state", "open", "--json", "number,title,createdAt", repo=repo)
    )
    prefix = title("")
    return {issue["title"].removeprefix(prefix): issue for issue in found if issue["title"].startswith(prefix)}


def people(values: list[str], variable: str) -> list[str]:
    """Logins or teams from repeated options and an environment variable (comma or space separated)."""
    listed = [*values, *re.split(r"[,\s]+", os.environ.get(variable, ""))]
    return [value for value in dict.fromkeys(v.strip() for v in listed) if value]


def _instant(stamp: str) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def clean_streak(number: int, repo: str | None) -> int:
    """Clean-night comments since the last regression comment on the issue."""
    comments = json.loads(gh("issue", "view", str(number), "--json", "comments", repo=repo))["comments"]
    streak = 0
    for comment in reversed(comments):
        if not comment["body"].startswith(CLEAN_MARK):
            break
        streak += 1
    return streak


def regression_body(cases: list[dict[str, Any]], run_url: str, mentions: Sequence[str]) -> str:
    lines = [f"Confirmed on re-measurement in {run_url}:", ""]
    for case in cases:
        moved = ", ".join(
            f"{f['name']} {f['current']:.4g} vs {f['reference']:.4g} [{f['low']:.4g}, {f['high']:.4g}]"
            for f in case["figures"]
            if f["status"] == "regression" and f.get("alerts", True)
        )
        lines.append(f"- `{case['case_id']}` ({case['status']}): {moved or case['detail']}. "
                     f"Reproduce: `{case['reproduce']}`")  # fmt: skip
    lines += ["", "If the new figures are intended: `perfgate accept CASE... --history DIR --reason TEXT` "
              "(or run the nightly workflow by hand with its accept and reason inputs)."]  # fmt: skip
    if mentions:
        lines += ["", "cc " + " ".join(m if m.startswith("@") else f"@{m}" for m in mentions)]
    return "\n".join(lines)


def alert(
    comparison: dict[str, Any],
    run_url: str,
    clean_nights: int,
    repo: str | None,
    assignees: Sequence[str] = (),
    mentions: Sequence[str] = (),
) -> list[str]:
    """Act on the comparison; returns what was done, one line per action."""
    confirmed: dict[str, list[dict[str, Any]]] = {}
    for case in comparison["cases"]:
        if case["status"] in ALERTING and case.get("confirmed") is True:
            confirmed.setdefault(family(case["case_id"]), []).append(case)
    compared = {family(c["case_id"]) for c in comparison["cases"] if c["status"] not in ("new", "incomparable")}
    issues = open_issues(repo)
    done = []
    if confirmed and any(name not in issues for name in confirmed):
        ensure_label(repo)
    for name, cases in sorted(confirmed.items()):
        body = regression_body(cases, run_url, mentions)
        if name in issues:
            gh("issue", "comment", str(issues[name]["number"]), "--body", body, repo=repo)
            done.append(f"commented on #{issues[name]['number']} ({name})")
        else:
            assign = [part for login in assignees for part in ("--assignee", login)]
            gh("issue", "create", "--title", title(name), "--label", LABEL, "--body", body, *assign, repo=repo)
            done.append(f"opened an issue for {name}" + (f", assigned to {', '.join(assignees)}" if assignees else ""))
    closed = set()
    for acceptance in comparison.get("acceptances", []):
        for name in sorted({family(case_id) for case_id in acceptance["cases"]}):
            issue = issues.get(name)
            if issue is None or name in confirmed or name in closed:
                continue
            if _instant(issue["createdAt"]) > _instant(acceptance["when"]):
                continue  # a regression found after the acceptance: not what was accepted
            body = (f"Accepted as the new baseline by {acceptance['who']} ({acceptance['when']}): "
                    f"\"{acceptance['reason']}\". From run {acceptance['run']} on, "
                    f"{', '.join(acceptance['cases'])} compare with their new figures ({run_url}).")  # fmt: skip
            gh("issue", "close", str(issue["number"]), "--reason", "not planned", "--comment", body, repo=repo)
            closed.add(name)
            done.append(f"closed #{issue['number']} ({name}): accepted by {acceptance['who']}")
    for name, issue in sorted(issues.items()):
        number = issue["number"]
        if name in confirmed or name in closed or name not in compared:
            continue  # regressed again, accepted, or not measured tonight: no evidence either way
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
    parser.add_argument("--assignee", action="append", default=[], help="assign new issues (repeatable)")
    parser.add_argument("--mention", action="append", default=[], help="@-mention in each alert (repeatable)")
    parser.add_argument("--summary", type=Path, help="also append what was done here (e.g. $GITHUB_STEP_SUMMARY)")
    args = parser.parse_args(argv)
    try:
        comparison = json.loads(args.comparison.read_text())
    except (OSError, json.JSONDecodeError) as error:
        print(f"alert: comparison file {str(args.comparison)!r} is not readable JSON ({error}); "
              "write it with perfgate compare --json", file=sys.stderr)  # fmt: skip
        return 2
    assignees = people(args.assignee, "PERFGATE_ALERT_ASSIGNEES")
    mentions = people(args.mention, "PERFGATE_ALERT_MENTIONS")
    try:
        done = alert(comparison, args.run_url, args.clean_nights, args.repo, assignees, mentions)
    except AlertError as error:
        print(f"alert: {error}", file=sys.stderr)
        return 1
    for line in done:
        print(line)
    if args.summary:
        with args.summary.open("a") as summary:
            summary.write("## perfgate alerts\n\n" + "".join(f"- {line}\n" for line in done or ["nothing to do"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
