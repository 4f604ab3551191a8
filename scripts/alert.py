#!/usr/bin/env python3
"""Nightly alerting through the ``gh`` CLI: one open issue per regressed technique family, hardware
class and workflow.

Reads ``perfgate join-night`` output (or ``perfgate compare --confirm --json``'s). For each family (the
technique of a case) and class with a *confirmed* regression or failure (no result: a crash, OOM,
timeout): comment on its open issue, or open one (label ``perfgate-regression``, created when the
repository lacks it; assigned and @-mentioned as configured). A family whose open issue predates an
acceptance of its cases (``perfgate accept``) is closed, quoting the reason. For each family and class
with an open issue that was measured and compared tonight without a confirmed regression: comment a clean
night, and close the issue after ``--clean-nights`` clean nights in a row. A case that was not measured
(missing), not comparable or new is no evidence either way. Unconfirmed regressions (one-night blips)
never open an issue. The CPU and GPU nightlies (``--workflow``) keep their issues apart.

    python scripts/alert.py compare.json --run-url "$RUN_URL" --workflow nightly-cpu [--clean-nights 3]
        [--repo owner/name] [--assignee LOGIN ...] [--mention @team ...]

Assignees (GitHub logins, as ``gh issue create --assignee`` takes them) and mentions (logins or teams)
may also come as comma- or space-separated lists in PERFGATE_ALERT_ASSIGNEES and PERFGATE_ALERT_MENTIONS
(a workflow passes repository variables there).
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
# Characters of op-by-op diffs in one issue body, per case and in all (GitHub's limit is 65,536)
DIFF_LIMIT, DIFFS_LIMIT = 6000, 40000
ALERTING = ("regression", "failed")  # compare's statuses that open an issue once confirmed
COMPARED = ("unchanged", "improvement", *ALERTING)  # measured and compared tonight: evidence either way
# A GitHub login: what `gh issue create --assignee` takes (a team cannot be assigned).
LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
NAMED_CASE = re.compile(r"^- `([^`]+)` \((?:regression|failed)\)", re.MULTILINE)  # regression_body's lines
TITLE = re.compile(r"perfgate: confirmed regression in (?P<family>\S+) on (?P<runner>\S+) \((?P<workflow>[^)]+)\)")


def family(case_id: str) -> str:
    """``model/technique/bN/device`` -> technique: one issue per technique, all its cases in it."""
    parts = case_id.split("/")
    return parts[1] if len(parts) > 1 else case_id


def title(name: str, runner: str, workflow: str) -> str:
    return f"perfgate: confirmed regression in {name} on {runner} ({workflow})"


def runner_of(case: dict[str, Any], comparison: dict[str, Any]) -> str:
    """The hardware class a case was measured on: the join's per case, or one compare's for all."""
    return str(case.get("runner_class") or comparison.get("runner_class") or "unknown")


def gh(*args: str, repo: str | None) -> str:
    command = ["gh", *args, *(["--repo", repo] if repo else [])]
    try:
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise AlertError("the gh CLI is not installed here (GitHub-hosted runners have it)") from None
    except subprocess.CalledProcessError as error:
        raise AlertError(f"{' '.join(command[:3])} failed: {error.stderr.strip() or error}") from None


class AlertError(Exception):
    """A ``gh`` call that failed: the message carries gh's own words."""


def ensure_label(repo: str | None) -> None:
    """The real ``gh issue create`` refuses a label the repository lacks: create (or refresh) it first."""
    gh("label", "create", LABEL, "--force", "--color", LABEL_COLOR, "--description", LABEL_DESCRIPTION, repo=repo)


def open_issues(repo: str | None, workflow: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(family, class) -> this workflow's open perfgate issue (number, createdAt)."""
    found = json.loads(gh("issue", "list", "--label", LABEL, "--state", "open", "--limit", "500",
                          "--json", "number,title,createdAt", repo=repo))  # fmt: skip
    issues = {}
    for issue in found:
        parsed = TITLE.fullmatch(issue["title"])
        if parsed and parsed["workflow"] == workflow:
            issues[(parsed["family"], parsed["runner"])] = issue
    return issues


def people(values: list[str], variable: str) -> list[str]:
    """Logins or teams from repeated options and an environment variable (comma or space separated)."""
    listed = [*values, *re.split(r"[,\s]+", os.environ.get(variable, ""))]
    return [value for value in dict.fromkeys(v.strip() for v in listed) if value]


def check_assignees(assignees: Sequence[str]) -> None:
    """gh assigns logins only: a team or an @-prefixed name would fail the first issue of a regression."""
    for login in assignees:
        if not LOGIN.fullmatch(login):
            hint = (
                f"write it without the @ ({login.lstrip('@')!r})"
                if login.startswith("@") and LOGIN.fullmatch(login[1:])
                else "a team cannot be assigned: mention it with PERFGATE_ALERT_MENTIONS instead"
                if "/" in login
                else "a GitHub login has letters, digits and single hyphens"
            )
            raise AlertError(
                f"assignee {login!r} (--assignee or PERFGATE_ALERT_ASSIGNEES) is not a GitHub login: {hint}"
            )


def _instant(stamp: str) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def issue_thread(number: int, repo: str | None) -> tuple[int, set[str]]:
    """The issue's clean-night comments since its last regression comment, and the cases it names as
    regressed or failed (its body and its comments)."""
    thread = json.loads(gh("issue", "view", str(number), "--json", "body,comments", repo=repo))
    comments = [comment["body"] for comment in thread["comments"]]
    streak = 0
    for comment in reversed(comments):
        if not comment.startswith(CLEAN_MARK):
            break
        streak += 1
    named = set(NAMED_CASE.findall("\n".join([thread.get("body") or "", *comments])))
    return streak, named


def regression_body(cases: list[dict[str, Any]], run_url: str, mentions: Sequence[str]) -> str:
    lines = [f"Confirmed on re-measurement in {run_url}:", ""]
    room = DIFFS_LIMIT
    for case in cases:
        moved = ", ".join(
            f"{f['name']} {f['current']:.4g} vs {f['reference']:.4g} [{f['low']:.4g}, {f['high']:.4g}]"
            for f in case["figures"]
            if f["status"] == "regression" and f.get("alerts", True)
        )
        lines.append(f"- `{case['case_id']}` ({case['status']}): {moved or case['detail']}. "
                     f"Reproduce: `{case['reproduce']}`")  # fmt: skip
        explained = case.get("explain")  # perfgate compare --explain: where the time went, op by op
        if explained:
            diff = explained.get("markdown") or f"Not explained op by op: {explained['why']}"
            # GitHub refuses a body over 65,536 characters: diffs are cut to fit, the lines around them stay
            fits = max(0, min(DIFF_LIMIT, room))
            if len(diff) > fits:
                diff = diff[:fits] + "\n\n(cut to fit the issue: the whole diff is in the run's compare.json)"
            room -= len(diff)
            lines += ["", diff, ""]
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
    workflow: str = "nightly",
) -> list[str]:
    """Act on the comparison; returns what was done, one line per action."""
    check_assignees(assignees)
    confirmed: dict[tuple[str, str], list[dict[str, Any]]] = {}
    compared: dict[tuple[str, str], set[str]] = {}  # measured and compared tonight, by family and class
    for case in comparison["cases"]:
        key = (family(case["case_id"]), runner_of(case, comparison))
        if case["status"] in ALERTING and case.get("confirmed") is True:
            confirmed.setdefault(key, []).append(case)
        elif case["status"] in COMPARED:
            compared.setdefault(key, set()).add(case["case_id"])
    issues = open_issues(repo, workflow)
    done = []
    if confirmed and any(key not in issues for key in confirmed):
        ensure_label(repo)
    for key, cases in sorted(confirmed.items()):
        name = f"{key[0]} on {key[1]}"
        body = regression_body(cases, run_url, mentions)
        if key in issues:
            gh("issue", "comment", str(issues[key]["number"]), "--body", body, repo=repo)
            done.append(f"commented on #{issues[key]['number']} ({name})")
        else:
            assign = [part for login in assignees for part in ("--assignee", login)]
            gh("issue", "create", "--title", title(*key, workflow), "--label", LABEL, "--body", body, *assign,
               repo=repo)  # fmt: skip
            done.append(f"opened an issue for {name}" + (f", assigned to {', '.join(assignees)}" if assignees else ""))
    closed = set()
    for acceptance in comparison.get("acceptances", []):
        accepted = {family(case_id) for case_id in acceptance["cases"]}
        for key, issue in sorted(issues.items()):
            if key[0] not in accepted or key in confirmed or key in closed:
                continue
            if _instant(issue["createdAt"]) > _instant(acceptance["when"]):
                continue  # a regression found after the acceptance: not what was accepted
            body = (f"Accepted as the new baseline by {acceptance['who']} ({acceptance['when']}): "
                    f"\"{acceptance['reason']}\". From run {acceptance['run']} on, "
                    f"{', '.join(acceptance['cases'])} compare with their new figures ({run_url}).")  # fmt: skip
            gh("issue", "close", str(issue["number"]), "--reason", "not planned", "--comment", body, repo=repo)
            closed.add(key)
            done.append(f"closed #{issue['number']} ({key[0]} on {key[1]}): accepted by {acceptance['who']}")
    for key, issue in sorted(issues.items()):
        number = issue["number"]
        if key in confirmed or key in closed or key not in compared:
            continue  # regressed again, accepted, or not measured tonight: no evidence either way
        streak, named = issue_thread(number, repo)
        unmeasured = sorted(named - compared[key])
        if unmeasured:  # the cases the issue is about were not all compared tonight: no evidence
            done.append(f"no clean night on #{number} ({key[0]} on {key[1]}): {', '.join(unmeasured)} not compared")
            continue
        streak += 1
        gh("issue", "comment", str(number), "--body", f"{CLEAN_MARK} {streak}/{clean_nights} ({run_url})", repo=repo)
        done.append(f"clean night {streak}/{clean_nights} on #{number} ({key[0]} on {key[1]})")
        if streak >= clean_nights:
            gh("issue", "close", str(number), "--reason", "completed", repo=repo)
            done.append(f"closed #{number} ({key[0]} on {key[1]})")
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
    parser.add_argument(
        "--workflow", default=os.environ.get("GITHUB_WORKFLOW", "nightly"),
        help="the workflow whose issues these are (its issues' titles name it; default $GITHUB_WORKFLOW)",
    )  # fmt: skip
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
        done = alert(comparison, args.run_url, args.clean_nights, args.repo, assignees, mentions, args.workflow)
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
