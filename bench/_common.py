"""What the benchmark scripts share: arguments, timing, peak memory, the machine, output.

Every script measures everything in one process run (so ratios hold on a noisy machine), logs
progress to stderr, and prints either a small rich table or, with ``--json``, one JSON object on
stdout.

Example:
    >>> args = parser("python -m bench.verify", "Verifier throughput.").parse_args(["--json"])
    >>> device = setup(args)
    >>> with PeakMemory() as mem, Timer() as t:
    ...     work()
    >>> t.seconds, mem.rss_mib
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def log(message: str) -> None:
    """Progress for people: stderr, so ``--json`` keeps stdout to one JSON object."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    p = argparse.ArgumentParser(prog=prog, description=doc.strip().splitlines()[0])
    p.add_argument("--preset", default="default", help="world preset (default: default)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for everything measured (default: 1, the threads the "
                        "world's models were trained with)")
    p.add_argument("--seed", type=int, default=0)
    return p


def setup(args: argparse.Namespace) -> str:
    """Apply ``--threads`` and resolve ``--device`` (a clear error if CUDA is asked for and absent)."""
    import torch

    from loka.errors import LokaError
    from loka.io.models import resolve_device

    torch.set_num_threads(args.threads)
    try:
        return resolve_device(args.device)
    except LokaError as exc:  # e.g. --device cuda on a machine without one: one line, exit 2
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds`` (wall clock, `time.perf_counter`)."""

    seconds: float = 0.0

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5); False where unsupported."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB: ``VmHWM`` (resettable), else ``ru_maxrss``."""
    kib = _status_kib("VmHWM")
    if kib is None:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024


def rss_mib() -> float:
    """Current resident memory of this process in MiB (``VmRSS``; 0 where /proc is absent)."""
    return (_status_kib("VmRSS") or 0) / 1024


class PeakMemory:
    """Peak process RSS (MiB) and, on CUDA, peak allocated GPU memory (MiB) inside a block.

    The RSS mark is reset on entry where Linux allows it (``resettable``); otherwise the number
    is the process's lifetime peak so far, an upper bound for the block.
    """

    rss_mib: float = 0.0
    cuda_mib: float | None = None
    resettable: bool = False

    def __init__(self, device: str = "cpu"):
        self.device = device

    def __enter__(self) -> PeakMemory:
        self.resettable = reset_peak_rss()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        self.rss_mib = peak_rss_mib()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.cuda_mib = torch.cuda.max_memory_allocated() / 2**20

    def to_dict(self) -> dict[str, Any]:
        return {"peak_rss_mib": round(self.rss_mib, 1), "peak_cuda_mib": self.cuda_mib,
                "peak_rss_reset": self.resettable}


def sync(device: str) -> None:
    """Wait for queued GPU work, so wall-clock timings on CUDA are complete (no-op on CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def machine(device: str) -> dict[str, Any]:
    """Where the numbers came from: CPU, cores, load, torch, threads, device, time (UTC)."""
    import torch

    info: dict[str, Any] = {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "device": device,
        "load_average_1m": round(os.getloadavg()[0], 2), "python": platform.python_version(),
        "started_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def finish(out: dict[str, Any], as_json: bool, render: Callable[[dict[str, Any]], None]) -> int:
    """Print the result: one JSON object (``--json``) or the human table ``render`` draws."""
    out.setdefault("machine", {})["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    if as_json:
        print(json.dumps(out, indent=2, allow_nan=False, default=float))
    else:
        render(out)
    return 0


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A small right-aligned rich table on stdout; floats get 3 significant decimals."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(fmt(v) for v in row))
    Console(width=160).print(table)


def fmt(value: Any) -> str:
    """Table cell text: ``-`` for None, 3 decimals below 10, 1 decimal above."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)
