"""The benchmarks' result files: ``benchmarks/results/NAME.json``, one row per setting.

Each file holds ``{"rows": [...], "runs": {...}}``: the rows (each with the machine, the
torch and pyvae versions, the date and the command that made it) and nothing else, so the
documentation's tables can be made from them. :func:`write_row` replaces the row with the same
key, so re-running one setting updates its row only.

The folder is ``benchmarks/results/``, or the one named by the environment variable
``PYVAE_BENCH_RESULTS`` (smoke runs write there instead); a script may also set
``_results.RESULTS`` (its ``--results DIR`` flag).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

import pyvae

RESULTS = Path(os.environ.get("PYVAE_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")

__all__ = ["RESULTS", "machine", "write_row"]


def machine(device: str = "cpu") -> str:
    """The machine in words: the CPU (and cores) or the GPU."""
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def write_row(name: str, key: dict[str, Any], row: dict[str, Any], device: str = "cpu") -> Path:
    """Add ``row`` (with ``key``'s fields) to ``results/NAME.json``, replacing the row
    with the same key; the machine, versions, date and command are added to it."""
    path = RESULTS / f"{name}.json"
    content = json.loads(path.read_text()) if path.exists() else {"rows": []}
    full = {
        **key,
        **row,
        "machine": machine(device),
        "torch": torch.__version__,
        "pyvae": pyvae.__version__,
        "date": datetime.date.today().isoformat(),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
    }
    rows = [r for r in content["rows"] if any(r.get(k) != v for k, v in key.items())]
    content["rows"] = sorted([*rows, full], key=lambda r: [str(r.get(k)) for k in key])
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(content, indent=2) + "\n")
    tmp.replace(path)
    return path
