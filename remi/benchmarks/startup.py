"""Seconds a fresh interpreter takes to import each heavy framework and each stage's module, and which
frameworks a stage's import loads: the part of every stage's start-up that is not its work
(BENCHMARKS.md, "Start-up").

    [REMI_DEVICE=cuda] remi benchmark startup [--repeats 3] [--out FILE.json]

Run from the project root (the stages are imported as `stages.<name>`). Every probe is a new process, as
DVC starts one per stage, so nothing is cached in memory between probes but what the OS caches on disk;
the median of the repeats is reported. A stage imports MLflow only when its run starts (remi.pipeline.tracking),
so the `mlflow` row comes on top of every stage's row.
"""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from remi.errors import UserError
from remi.runtime.device import hardware
from remi.runtime.files import write_json

FRAMEWORKS = {
    "python": "pass",
    "torch": "import torch",
    "sklearn.metrics": "import sklearn.metrics",
    "mlflow": "import mlflow",
    "great_expectations": "import great_expectations",
    "dvc.repo": "import dvc.repo",
    "remi.pipeline.tracking": "import remi.pipeline.tracking",
    "torch + first tensor on REMI_DEVICE": "import torch; from remi.runtime.device import compute_device; "
                                           "torch.zeros(1, device=compute_device())",
}
# Frameworks worth noticing when a stage's import pulls them in (each costs a second or more here).
HEAVY = ("torch", "sklearn", "mlflow", "great_expectations", "pandas")


def benchmark_startup(repeats: int, out: Path | None) -> None:
    stages = sorted(path.stem for path in Path("stages").glob("*.py") if path.stem != "__init__")
    if not stages:
        raise UserError("no stages/ here: run `remi benchmark startup` from the project root")
    probes = FRAMEWORKS | {f"stages.{name}": f"import stages.{name}" for name in stages}
    seconds: dict[str, float] = {}
    loads: dict[str, list[str]] = {}
    report = f"; import json, sys; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    for name, code in probes.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            finished = subprocess.run([sys.executable, "-c", code + report], check=True, capture_output=True,
                                      text=True)
            times.append(time.perf_counter() - started)
        seconds[name] = round(statistics.median(times), 2)
        if name.startswith("stages."):
            loads[name] = json.loads(finished.stdout.splitlines()[-1])
        loaded = f"  loads {', '.join(loads[name]) or 'none of them'}" if name in loads else ""
        print(f"{name:40s} {seconds[name]:6.2f} s{loaded}", flush=True)
    if out:
        write_json(out, {"hardware": hardware(), "repeats": repeats, "seconds": seconds,
                         "heavy_frameworks_loaded": loads})
