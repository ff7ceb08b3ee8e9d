"""A recheck margin per model against one margin for all: which int8 copies answer as PyTorch.

    python benchmarks/small_students.py --seeds 0 1 --backbones minilm --keep --json /tmp/kept.json
    python benchmarks/recheck_margin.py --runs /tmp/kept.json

For every kept student of those run records (the folders small_students.py keeps), the int8 copy
is exported as the deployment notebook exports it: its recheck margin measured on the task's first
`quantize.CALIBRATION_ROWS` unlabelled texts (`quantize.calibrate_margin`). Then the whole test set
is answered by PyTorch, int8 alone, int8 rechecked at the fixed `quantize.RECHECK_MARGIN` (the rival)
and int8 rechecked at the model's own margin (`serving.agreement`): same class as PyTorch and share
of texts rechecked, side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import serving  # noqa: E402

from helpers import quantize  # noqa: E402
from helpers.benchmark import machine  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "serving" / "recheck-margin.json"  # serving_report reads it
KEPT = ("task", "backbone", "seed", "window", "teacher", "kept_acc")  # what identifies a student, from its run


def measure(run: dict) -> dict:
    """Export one kept student with a measured margin and compare the margins on its test set."""
    model_dir = Path(run["model_dir"])
    serving.export(model_dir, run["task"])
    source = json.loads((quantize.onnx_dir_for(model_dir) / quantize.SOURCE_FILE).read_text())
    agreement = serving.agreement(model_dir, ROOT / f"data-{run['task']}" / "test.csv")
    return {**{k: run[k] for k in KEPT}, "calibration": source["calibration"], **agreement}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="small_students.py's JSON of the kept models")
    parser.add_argument("--json", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    runs = [r for r in json.loads(args.runs.read_text())["runs"] if Path(r["model_dir"]).is_dir()]
    if not runs:
        print(f"no kept model folder in {args.runs}: run small_students.py with --keep first", file=sys.stderr)
        return 2
    record = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": machine(),
              "headroom": quantize.HEADROOM, "fixed_margin": quantize.RECHECK_MARGIN, "runs": []}
    for run in runs:
        record["runs"].append(measure(run))
        print(record["runs"][-1], flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
