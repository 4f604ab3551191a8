"""Python environments that differ from the current one in a few packages, made in seconds.

``overlay_environment`` creates a virtual environment whose own site-packages comes first and falls back
on this environment's (a ``.pth`` line), so the libraries not being compared are shared, not downloaded
again. ``install_into`` puts one release into it with pip's own resolver run for that interpreter
(``pip --python``): the dependencies the underlying environment already satisfies stay shared, a release
whose dependencies changed gets them in its own site-packages. The library-upgrade gate and ``perfgate
bisect --package`` (one overlay per release) use them.
"""

from __future__ import annotations

import site
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from perfgate.errors import PerfgateError

__all__ = ["install_into", "overlay_environment", "released_versions"]


def overlay_environment(target: Path, packages: tuple[str, ...] = ()) -> Path:
    """The interpreter of a new environment at ``target`` layered over this one's packages; the
    ``packages`` (pip requirement strings) installed into its own site-packages, without dependencies."""
    interpreter = target / "bin" / "python"
    if not interpreter.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
        underneath = dict.fromkeys([sysconfig.get_path("purelib"), *site.getsitepackages()])
        (_own_site(interpreter) / "perfgate-underlay.pth").write_text("".join(f"{path}\n" for path in underneath))
    if packages:
        own = str(_own_site(interpreter))
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade", "--target", own]
        subprocess.run([*pip, *packages], check=True)
    return interpreter


def install_into(interpreter: Path, requirement: str, index_options: Sequence[str] = ()) -> None:
    """Install ``requirement`` into the overlay whose interpreter this is, dependencies resolved against
    what it sees (its own packages, then the underlying environment's). Raises PerfgateError with pip's
    last lines when pip cannot."""
    command = [sys.executable, "-m", "pip", "--python", str(interpreter), "install", "--quiet",
               "--disable-pip-version-check", *index_options, requirement]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise PerfgateError(f"pip could not install {requirement} into {interpreter.parent.parent}: {tail}")


def released_versions(package: str, index_options: Sequence[str] = ()) -> list[str]:
    """The versions of ``package`` the index offers, oldest first, as pip itself lists them (``pip index
    versions``: the same index options, the same filtering of yanked and pre-releases)."""
    import json

    from packaging.version import Version

    command = [sys.executable, "-m", "pip", "index", "versions", package, "--json",
               "--disable-pip-version-check", *index_options]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        raise PerfgateError(f"pip lists no versions of {package!r} ({tail}); check the name and the index options")
    return sorted(json.loads(done.stdout)["versions"], key=Version)


def _own_site(interpreter: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    return Path(subprocess.check_output([str(interpreter), "-c", code], text=True).strip())
