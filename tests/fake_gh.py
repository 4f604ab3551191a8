"""A fake ``gh`` CLI, as strict as the real one where perfgate's scripts touch it.

It keeps a repository's labels, assignable logins, issues, workflow runs and their artifacts, and refuses
what the real ``gh`` refuses: an unknown flag or ``--json`` field, an issue with a label the repository
lacks or an assignee who is not an assignable login, a close reason gh does not know, a call without a
token (GH_TOKEN) or a repository (``--repo`` or GH_REPO), a download of a run's artifact that was never
uploaded or has expired (with gh's two messages for those), and, during a planted outage, every call.
Messages and exit codes are gh's (2.6x): 1 for errors, 4 when authentication is missing.

``gh`` on PATH is a bash client that hands its arguments, working directory and the variables gh reads
to a server thread in the test process over the loopback interface, which answers with the exit code,
standard output and standard error. A call costs a few milliseconds, so a season of nights can make
thousands of them; the handler below is the fake, the transport only carries it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.loopback import answer, read_request, write_client

AUTH_MESSAGE = (
    "gh: To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN environment variable. Example:\n"
    "  env:\n    GH_TOKEN: ${{ github.token }}"
)
OUTAGE_MESSAGE = "error connecting to api.github.com\ncheck your internet connection or https://githubstatus.com"
NO_VALID_ARTIFACTS = "no valid artifacts found to download"
NO_MATCH = "no artifact matches any of the names or patterns provided"

# Per command: flags that take a value, flags that do not, JSON fields it can print.
# fmt: off
RUN_FIELDS = ["attempt", "conclusion", "createdAt", "databaseId", "displayTitle", "event", "headBranch", "headSha",
              "name", "number", "startedAt", "status", "updatedAt", "url", "workflowDatabaseId", "workflowName"]
ISSUE_FIELDS = ["assignees", "author", "body", "closed", "closedAt", "comments", "createdAt", "id", "labels",
                "milestone", "number", "state", "stateReason", "title", "updatedAt", "url"]
REPO_FIELDS = ["defaultBranchRef", "description", "name", "nameWithOwner", "owner", "url", "visibility"]
COMMANDS: dict[tuple[str, str], tuple[set[str], set[str], list[str]]] = {
    ("repo", "view"): ({"--json", "-q", "--jq", "-t", "--template", "-b", "--branch"}, {"-w", "--web"}, REPO_FIELDS),
    ("run", "list"): (
        {"-w", "--workflow", "-b", "--branch", "-L", "--limit", "--json", "-e", "--event", "-s", "--status",
         "-u", "--user", "-c", "--commit", "--created", "-q", "--jq", "-t", "--template"},
        {"-a", "--all"}, RUN_FIELDS,
    ),
    ("run", "download"): ({"-n", "--name", "-D", "--dir", "-p", "--pattern"}, set(), []),
    ("issue", "list"): (
        {"-l", "--label", "-s", "--state", "-L", "--limit", "--json", "-S", "--search", "-a", "--assignee",
         "-A", "--author", "-q", "--jq", "-t", "--template", "-m", "--milestone", "--mention", "--app"},
        {"-w", "--web"}, ISSUE_FIELDS,
    ),
    ("issue", "view"): ({"--json", "-q", "--jq", "-t", "--template"}, {"-c", "--comments", "-w", "--web"},
                        ISSUE_FIELDS),
    ("issue", "comment"): ({"-b", "--body", "-F", "--body-file"}, {"--edit-last", "-e", "--editor", "-w", "--web"}, []),
    ("issue", "create"): (
        {"-t", "--title", "-b", "--body", "-F", "--body-file", "-l", "--label", "-a", "--assignee", "-m",
         "--milestone", "-p", "--project", "-T", "--template"},
        {"-e", "--editor", "-w", "--web", "--recover"}, [],
    ),
    ("issue", "close"): ({"-c", "--comment", "-r", "--reason"}, set(), []),
    ("label", "create"): ({"-c", "--color", "-d", "--description"}, {"-f", "--force"}, []),
}
ALIASES = {"-w": "--workflow", "-b": "--branch", "-L": "--limit", "-e": "--event", "-s": "--state", "-n": "--name",
           "-D": "--dir", "-p": "--pattern", "-l": "--label", "-t": "--title", "-a": "--assignee", "-c": "--comment",
           "-r": "--reason", "-d": "--description", "-f": "--force", "-q": "--jq", "-F": "--body-file"}
# Where one short flag means another long one in a command.
COMMAND_ALIASES = {("issue", "create"): {"-b": "--body"}, ("issue", "comment"): {"-b": "--body"},
                   ("run", "list"): {"-s": "--status", "-a": "--all", "-c": "--commit", "-t": "--template"},
                   ("label", "create"): {"-c": "--color"}, ("repo", "view"): {"-t": "--template"},
                   ("issue", "view"): {"-c": "--comments", "-t": "--template"}}
# fmt: on


class GhError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Call:
    args: list[str]
    cwd: str
    token: str
    repo: str


@dataclass
class FakeGitHub:
    """The repository the fake ``gh`` serves, in memory; the test reads and plants through it."""

    artifacts: Path  # where uploaded artifacts are kept, one folder per run and name
    repo: str = "owner/repo"
    default_branch: str = "main"
    labels: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=lambda: ["alice", "bob", "carol", "maintainer"])
    issues_: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    outage: bool = False
    download_errors: dict[int, str] = field(default_factory=dict)  # run -> what gh says when its download fails
    log: list[list[str]] = field(default_factory=list)
    clock: int = 0  # calls so far: comment ids
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- what the tests read and plant -----------------------------------------------------------------
    def issues(self) -> list[dict[str, Any]]:
        return self.issues_

    def calls(self) -> list[list[str]]:
        return list(self.log)

    def now(self) -> str:
        """GitHub's stamps are the wall clock's, to the second, as perfgate accept's are."""
        import datetime

        return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def add_run(self, workflow: str, conclusion: str, uploads: dict[str, Path], branch: str = "main",
                event: str = "schedule", status: str = "completed") -> int:  # fmt: skip
        """A workflow run whose artifacts are copies of ``uploads`` (artifact name -> folder)."""
        number = 1000 + len(self.runs)
        kept = {}
        for name, folder in uploads.items():
            target = self.artifacts / str(number) / name
            shutil.copytree(folder, target)
            kept[name] = {"path": str(target), "expired": False}
        self.runs.append({"databaseId": number, "workflow": workflow, "headBranch": branch, "event": event,
                          "status": status, "conclusion": conclusion, "artifacts": kept,
                          "createdAt": self.now()})  # fmt: skip
        return number

    def expire(self, run: int, name: str) -> None:
        self.run(run)["artifacts"][name]["expired"] = True

    def run(self, number: int) -> dict[str, Any]:
        return next(r for r in self.runs if r["databaseId"] == number)

    # --- the fake ------------------------------------------------------------------------------------
    def handle(self, call: Call) -> tuple[int, str, str]:
        with self.lock:
            self.log.append(call.args)
            self.clock += 1
            try:
                return 0, self._dispatch(call), ""
            except GhError as error:
                return error.code, "", f"{error}\n"

    def _dispatch(self, call: Call) -> str:
        args = call.args
        if not call.token:
            raise GhError(AUTH_MESSAGE, 4)
        command = tuple(args[:2])
        if command not in COMMANDS:
            raise GhError(f'unknown command {" ".join(args[:2])!r} for "gh"')
        aliases = {**ALIASES, **COMMAND_ALIASES.get(command, {})}  # type: ignore[index]
        positional, options = _parse(args[2:], *COMMANDS[command][:2], usage=" ".join(command), aliases=aliases)
        repo = options.pop("--repo", [call.repo])[-1]
        if not repo:
            raise GhError("failed to determine base repo: set GH_REPO or pass --repo (no git remotes found)")
        if repo != self.repo:
            raise GhError(f"GraphQL: Could not resolve to a Repository with the name '{repo}'. (repository)")
        if self.outage:
            raise GhError(OUTAGE_MESSAGE)
        fields = _fields(options, COMMANDS[command][2])
        handler = getattr(self, "_" + "_".join(command))
        return str(handler(positional, options, fields, Path(call.cwd)))

    def _repo_view(self, positional: list[str], options: dict, fields: list[str], cwd: Path) -> str:
        data = {"defaultBranchRef": {"name": self.default_branch}, "name": self.repo.split("/")[1],
                "nameWithOwner": self.repo}  # fmt: skip
        return _print({f: data.get(f) for f in fields}, options)

    def _run_list(self, positional: list[str], options: dict, fields: list[str], cwd: Path) -> str:
        runs = self.runs
        if "--workflow" in options:
            wanted = options["--workflow"][-1]
            runs = [r for r in runs if r["workflow"] == wanted]
            if not any(r["workflow"] == wanted for r in self.runs):
                raise GhError(f"could not find any workflows named {wanted}")
        for flag, key in (("--branch", "headBranch"), ("--event", "event"), ("--status", "conclusion")):
            if flag in options:
                runs = [r for r in runs if r[key] == options[flag][-1]]
        limit = _limit(options, 20)
        runs = sorted(runs, key=lambda r: -r["databaseId"])[:limit]
        rows = [{**r, "workflowName": r["workflow"].removesuffix(".yml"), "name": r["workflow"]} for r in runs]
        if not fields:
            return "".join(f"{r['conclusion']}\t{r['workflow']}\t{r['headBranch']}\t{r['databaseId']}\n" for r in rows)
        return _print([{f: r.get(f, "") for f in fields} for r in rows], options)

    def _run_download(self, positional: list[str], options: dict, fields: list[str], cwd: Path) -> str:
        if len(positional) != 1:
            raise GhError("run ID required when not running interactively")
        found = [r for r in self.runs if str(r["databaseId"]) == positional[0]]
        if not found:
            raise GhError(
                f"HTTP 404: Not Found (https://api.github.com/repos/{self.repo}/actions/runs/{positional[0]})"
            )
        if found[0]["databaseId"] in self.download_errors:
            raise GhError(self.download_errors[found[0]["databaseId"]])
        valid = {n: a for n, a in found[0]["artifacts"].items() if not a["expired"]}
        if not valid:
            raise GhError(NO_VALID_ARTIFACTS)
        names = options.get("--name", [])
        chosen = [n for n in valid if n in names] if names else sorted(valid)
        if not chosen:
            raise GhError(NO_MATCH)
        target = cwd / options.get("--dir", ["."])[-1]
        for name in chosen:  # one name: straight into the directory; several: a folder each, as gh does
            into = target if len(names) == 1 else target / name
            shutil.copytree(valid[name]["path"], into, dirs_exist_ok=True, copy_function=_link)
        return ""

    def _issue(self, number: str) -> dict[str, Any]:
        found = [i for i in self.issues_ if str(i["number"]) == number]
        if not found:
            raise GhError(f"GraphQL: Could not resolve to an issue or pull request with the number of {number}. "
                          "(repository.issue)")  # fmt: skip
        return found[0]

    def _issue_list(self, positional: list[str], options: dict, fields: list[str], cwd: Path) -> str:
        state = options.get("--state", ["open"])[-1]
        if state not in ("open", "closed", "all"):
            raise GhError(f'invalid argument "{state}" for "-s, --state" flag: valid values are {{open|closed|all}}')
        labels = options.get("--label", [])
        found = [i for i in self.issues_ if state in ("all", i["state"]) and all(lb in i["labels"] for lb in labels)]
        found = sorted(found, key=lambda i: -i["number"])[: _limit(options, 30)]
        return _print([{f: _issue_field(i, f) for f in fields} for i in found], options)

    def _issue_view(self, positional: list[str], options: dict, fields: list[str], cwd: Path) -> str:
        issue = self._issue(positional[0])
        return _print({f: _issue_field(issue, f) for f in fields}, options)

    def _issue_comment(self, positional: list[str], options: dict, fields: list[str], cwd: Path) -> str:
        issue = self._issue(positional[0])
        body = _body(options, cwd)
        issue["comments"].append({"body": body, "createdAt": self.now()})
        return f"https://github.com/{self.repo}/issues/{issue['number']}#issuecomment-{self.clock}\n"

    def _issue_create(self, positional: list[str], options: dict, fields: list[str], cwd: Path) -> str:
        if "--title" not in options or ("--body" not in options and "--body-file" not in options):
            raise GhError("must provide `--title` and `--body` (or `--fill` or `--body-file`) when not running "
                          "interactively")  # fmt: skip
        labels = [lb for given in options.get("--label", []) for lb in given.split(",")]
        for label in labels:
            if label not in self.labels:
                raise GhError(f"could not add label: '{label}' not found")
        assignees = [a for given in options.get("--assignee", []) for a in given.split(",")]
        for login in assignees:
            if login not in self.logins:
                raise GhError(f"'{login}' not found")
        number = len(self.issues_) + 1
        self.issues_.append({"number": number, "title": options["--title"][-1], "state": "open", "comments": [],
                             "body": _body(options, cwd), "labels": labels, "assignees": assignees,
                             "createdAt": self.now(), "reason": None})  # fmt: skip
        return f"https://github.com/{self.repo}/issues/{number}\n"

    def _issue_close(self, positional: list[str], options: dict, fields: list[str], cwd: Path) -> str:
        reason = options.get("--reason", [None])[-1]
        if reason not in (None, "completed", "not planned"):  # the flag's values, checked before any request
            raise GhError(f'invalid argument "{reason}" for "-r, --reason" flag: valid values are '
                          "{completed|not planned}")  # fmt: skip
        issue = self._issue(positional[0])
        if issue["state"] == "closed":
            return f"! Issue #{issue['number']} ({issue['title']}) is already closed\n"
        if "--comment" in options:
            issue["comments"].append({"body": options["--comment"][-1], "createdAt": self.now()})
        issue["state"], issue["reason"] = "closed", reason or "completed"
        return f"✓ Closed issue #{issue['number']} ({issue['title']})\n"

    def _label_create(self, positional: list[str], options: dict, fields: list[str], cwd: Path) -> str:
        name = positional[0]
        if name in self.labels and "--force" not in options:
            raise GhError(f'label with name "{name}" already exists; use `--force` to update its color and description')
        if name not in self.labels:
            self.labels.append(name)
        return ""


def _link(source: str, target: str) -> None:
    """A download's files as hard links: the artifact store never changes a file it kept, and readers
    only read; a copy of each night's whole history, night after night, is what a season would spend."""
    os.link(source, target)


def _parse(
    args: list[str], valued: set[str], flags: set[str], usage: str, aliases: dict[str, str]
) -> tuple[list[str], dict[str, list[str]]]:
    """Positional arguments and option -> values, refusing what gh's flag parser refuses."""
    positional: list[str] = []
    options: dict[str, list[str]] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        name, inline = ([*arg.split("=", 1), None])[:2] if arg.startswith("--") else (arg, None)
        if arg.startswith("-") and arg != "-":
            canonical = aliases.get(name, name)
            if name in ("-R", "--repo"):
                canonical = "--repo"
            elif name not in valued and name not in flags:
                raise GhError(f"unknown flag: {name}\n\nUsage:  gh {usage} [flags]")
            if name in flags:
                options.setdefault(canonical, []).append("true")
            else:
                if inline is None:
                    if index + 1 >= len(args):
                        raise GhError(f"flag needs an argument: {name}")
                    index += 1
                    inline = args[index]
                options.setdefault(canonical, []).append(inline)
        else:
            positional.append(arg)
        index += 1
    return positional, options


def _fields(options: dict[str, list[str]], known: list[str]) -> list[str]:
    if "--json" not in options:
        return []
    fields = [f for f in options["--json"][-1].split(",") if f]
    for name in fields:
        if name not in known:
            raise GhError(f'Unknown JSON field: "{name}"\nAvailable fields:\n' + "".join(f"  {f}\n" for f in known))
    return fields


def _limit(options: dict[str, list[str]], default: int) -> int:
    value = options.get("--limit", [str(default)])[-1]
    if not value.isdigit() or int(value) < 1:
        raise GhError(f"invalid limit: {value}")
    return int(value)


def _print(data: Any, options: dict[str, list[str]]) -> str:
    if "--jq" in options:  # the one filter perfgate's scripts use: a dotted path
        for key in options["--jq"][-1].strip(".").split("."):
            data = data[key] if key else data
        return f"{data}\n"
    return json.dumps(data) + "\n"


def _issue_field(issue: dict[str, Any], name: str) -> Any:
    if name == "labels":
        return [{"name": label} for label in issue["labels"]]
    if name == "assignees":
        return [{"login": login} for login in issue["assignees"]]
    return issue.get(name)


BODY_LIMIT = 65536  # GitHub's, for an issue's body and a comment's


def _body(options: dict[str, list[str]], cwd: Path) -> str:
    body = (cwd / options["--body-file"][-1]).read_text() if "--body-file" in options else options["--body"][-1]
    if len(body) > BODY_LIMIT:
        raise GhError(f"GraphQL: Body is too long (maximum is {BODY_LIMIT} characters)")
    return body


# --- transport: a bash client on PATH, a server thread here ---------------------------------------------
REQUEST = r"""printf '%s\0' "$PWD" "${GH_TOKEN:-${GITHUB_TOKEN:-}}" "${GH_REPO:-}" "$#" "$@" END >&3"""


@contextlib.contextmanager
def serve(tmp_path: Path, labels: tuple[str, ...] = ()) -> Iterator[FakeGitHub]:
    """A repository served to a ``gh`` client written into tmp_path/fake-gh-bin (not put on PATH)."""
    github = FakeGitHub(tmp_path / "fake-gh-artifacts", labels=list(labels))

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            fields = read_request(self.request)
            cwd, token, repo, count = fields[:4]
            code, out, err = github.handle(Call(fields[4 : 4 + int(count)], cwd, token, repo))
            answer(self.request, code, out.encode(), err.encode())

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    bin_dir = tmp_path / "fake-gh-bin"
    bin_dir.mkdir(exist_ok=True)
    write_client(bin_dir / "gh", server.server_address[1], REQUEST)
    try:
        yield github
    finally:
        server.shutdown()
        server.server_close()


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, labels: tuple[str, ...] = ()) -> Iterator[FakeGitHub]:
    """Put the fake ``gh`` first on PATH (for subprocesses too) with an empty repository, a token and
    GH_REPO, as a workflow step that calls gh has them."""
    with serve(tmp_path, labels) as github:
        monkeypatch.setenv("PATH", f"{tmp_path / 'fake-gh-bin'}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("GH_TOKEN", "fake-token")
        monkeypatch.setenv("GH_REPO", github.repo)
        yield github
