"""Screenshot a LOKA report in headless Chromium, to check that it opens and is legible.

    .venv/bin/python scripts/screenshot_report.py loka-demo/report.html report.png [--size 1280,2400]

Uses Debian's ``chromium`` (``/usr/bin/chromium``; ``$CHROMIUM`` overrides) with a fresh
profile directory and every background network feature off, so the report is rendered from the
file alone. Exit code 0 and a non-empty PNG on success; a one-line error otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")


def find_chromium() -> str | None:
    """``$CHROMIUM``, else ``/usr/bin/chromium``, else a chromium on ``PATH``."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(report: str | Path, png: str | Path, size: tuple[int, int] = (1280, 2400),
               timeout: float = 120) -> Path:
    """Render ``report`` to ``png`` at ``size`` (width, height); raise RuntimeError on failure."""
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("chromium not found: install Debian's `chromium` or set $CHROMIUM")
    report, png = Path(report).resolve(), Path(png).resolve()
    if not report.is_file():
        raise RuntimeError(f"no report at {report}")
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="loka-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
               f"--window-size={size[0]},{size[1]}", report.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "HOME": profile})
    if not png.is_file() or png.stat().st_size == 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"chromium exited {proc.returncode} without a screenshot: {' | '.join(tail)}")
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", help="the report.html to render")
    parser.add_argument("png", nargs="?", default="report.png", help="where to save the PNG")
    parser.add_argument("--size", default="1280,2400", help="window WIDTH,HEIGHT in pixels")
    args = parser.parse_args(argv)
    try:
        width, height = (int(x) for x in args.size.split(","))
        print(screenshot(args.report, args.png, (width, height)))
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        print(f"screenshot_report: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
