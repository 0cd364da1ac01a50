"""A real headless Chromium for the e2e tier, without touching the machine.

Debian's `chromium` package and the libraries it needs beyond the base system are fetched with
`apt-get download` and unpacked (not installed) into
`${XDG_CACHE_HOME:-~/.cache}/pinstack/chromium/<version>/`; a second call finds them there.
A `chromium` already on PATH is used as it is. Playwright's own browser download is not an
option: it fetches builds from outside the package registries.

    python3 e2e/src/pinstack_e2e/browser.py      # install (if needed) and print the binary

Standard library only: .ci/run calls it before the Python environment exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "chromium"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pinstack" / "chromium"


def _candidate() -> str | None:
    policy = subprocess.run(["apt-cache", "policy", PACKAGE], capture_output=True, text=True).stdout
    for line in policy.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Candidate" and value.strip() not in ("", "(none)"):
            return value.strip()
    return None


def _unpacked(version: str) -> Path:
    return cache_dir() / version / "root"


def install() -> Path:
    """The unpacked tree of Debian's current chromium, fetched once per version."""
    version = _candidate()
    if version is None:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        version = _candidate()
    if version is None:
        raise RuntimeError(f"apt knows no {PACKAGE} package: no headless browser to be had")
    root = _unpacked(version)
    if (root.parent / ".complete").exists():
        return root
    # what `apt-get install` would add to this machine: chromium and the libraries it lacks
    simulated = subprocess.run(
        ["apt-get", "install", "--simulate", "--no-install-recommends", PACKAGE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    packages = [line.split()[1] for line in simulated.splitlines() if line.startswith("Inst ")]
    shutil.rmtree(root.parent, ignore_errors=True)
    root.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="pinstack-chromium-") as debs:
        subprocess.run(["apt-get", "download", "-qq", *packages], cwd=debs, check=True, capture_output=True)
        for deb in sorted(Path(debs).glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    (root.parent / ".complete").write_text(" ".join(packages) + "\n")
    return root


def command() -> tuple[list[str], dict[str, str]]:
    """The argv prefix and environment of a headless Chromium, installing it when needed."""
    on_path = shutil.which(PACKAGE)
    if on_path:
        return [on_path], dict(os.environ)
    root = install()
    libraries = sorted(
        {str(so.parent) for so in root.glob("**/lib*.so*") if "chromium" not in so.relative_to(root).parts}
    )
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join([*libraries, os.environ.get("LD_LIBRARY_PATH", "")])}
    return [str(root / "usr" / "lib" / "chromium" / "chromium")], env


def rendered_dom(url: str, *, budget_ms: int = 15_000, timeout: float = 120.0) -> str:
    """The DOM of `url` after its scripts ran, loaded the way an offline machine would: every host
    but 127.0.0.1 fails to resolve, so nothing can come from a CDN."""
    argv, env = command()
    with tempfile.TemporaryDirectory(prefix="pinstack-chromium-profile-") as profile:
        done = subprocess.run(
            [
                *argv,
                "--headless",
                "--no-sandbox",  # root in CI; the page is our own
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


if __name__ == "__main__":
    print(command()[0][0])
    sys.exit(0)
