"""The whole course in one call, for the CLI and benchmarks (the notebook runs the same steps one by one)."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
import torch

from helpers.budget import BUDGET_MINUTES, Budget
from helpers.device import is_main_process, mixed_precision, resolve_device, world_size
from helpers.distill import DistillResult, distill
from helpers.evaluate import Evaluation, TeacherReport, comparison_table, evaluate_student, evaluate_teacher
from helpers.export import export_model
from helpers.limits import TEACHER_TEXT_WORDS
from helpers.student import StudentConfig
from helpers.task import Task, load_task
from helpers.teachers import make_teacher
from helpers.window import fit_to_task

PACKAGES = ("torch", "transformers", "datasets", "scikit-learn", "pandas", "numpy")


def package_versions() -> dict[str, str]:
    """Versions recorded in training-logs.json, so a run can be reproduced."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


@dataclass
class RunReport:
    """What a full run produced and measured."""

    task: Task
    teacher_report: TeacherReport
    result: DistillResult
    evaluations: list[Evaluation]
    model_dir: Path | None
    seconds: float

    def table(self) -> pd.DataFrame:
        return comparison_table(self.evaluations)

    def text(self) -> str:
        resumed = {name: s.resumed_from for name, s in [("student-base", self.result.student_base),
                                                         ("student-tuned", self.result.student_tuned)]
                   if s is not None and s.resumed_from}
        lines = [self.task.summary(), *([f"resumed: {resumed}"] if resumed else []), "",
                 self.table().to_string(), "",
                 f"kept: {self.result.chosen} (validation decides; never worse than seed-only)"
                 + ("; retrained from the teacher of every seed row" if "refit_teacher" in self.result.stats else ""),
                 f"data: {self.result.stats}",
                 f"window: the student reads the first {self.result.student.config.max_length} word pieces of a "
                 "text (--max-length; default chosen from the task's texts)"]
        shortened = self.result.stats.get("teacher_texts_shortened", 0)
        if shortened:
            lines.append(f"{shortened} unlabelled text(s) were longer than {TEACHER_TEXT_WORDS} words; the teacher "
                         "read their first and last words only (the middle is marked as left out)")
        lines += [f"time budget: {line}" for line in self.result.stats.get("budget", {}).get("skipped", [])]
        if self.teacher_report.warning:
            lines += ["", "WARNING: " + self.teacher_report.warning]
        if self.model_dir:
            lines += ["", f"model written to {self.model_dir}"]
        return "\n".join(lines + [f"total {self.seconds:.0f} s"])


def metadata(task: Task, teacher_spec: str, config: StudentConfig, result: DistillResult,
             evaluations: list[Evaluation], max_unlabelled: int | None) -> dict:
    """Run metadata stored in training-logs.json (no secrets: specs hold no keys)."""
    return {"task": task.name, "task_folder": Path(task.directory).name, "teacher": teacher_spec,
            "backbone": config.backbone, "device": run_device(config),
            "parameters": {**vars(config), "max_unlabelled": max_unlabelled}, "chosen": result.chosen,
            "data": result.stats, "versions": package_versions(),
            "teacher_speed": evaluations[0].speed if evaluations else None,  # the teacher comes first
            "evaluation": comparison_table(evaluations).reset_index().to_dict(orient="records")}


def run_device(config: StudentConfig) -> dict:
    """Where this run trained (and a local teacher ran), recorded so timings can be read right."""
    device = resolve_device(config.device)
    return {"name": device, "processes": world_size(),
            "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None, **mixed_precision(device)}


def run(task_dir: str | Path, teacher_spec: str, out_dir: str | Path | None = "model",
        config: StudentConfig | None = None, max_unlabelled: int | None = None,
        cache_dir: str | Path | None = ".cache/teacher", progress: bool = True,
        teacher_budget: int | None = None, synthetic_per_class: int = 0,
        work_dir: str | Path | None = None, resume: bool = False, guard_folds: int = 1,
        search_trials: int = 0, budget_minutes: float | None = BUDGET_MINUTES) -> RunReport:
    """Validate, evaluate the teacher, distil, evaluate everyone on test, export.

    `work_dir` keeps training checkpoints so that ``resume`` can continue a killed run;
    `search_trials` > 0 searches student-tuned's recipe first (see `distill`), and the
    search's summary reaches training-logs.json with the other stats (``data.search``).
    `budget_minutes` counts from this call; extras that would overrun it are skipped
    and named in the report (helpers/budget.py; None or 0: no limit, as benchmarks need).
    """
    start = time.perf_counter()
    budget = Budget(budget_minutes)
    task = load_task(task_dir)
    config = fit_to_task(config or StudentConfig(), task)  # the window, from the texts (helpers/window.py)
    teacher = make_teacher(teacher_spec, task, device=config.device)
    teacher_report = evaluate_teacher(task, teacher, cache_dir, progress)
    result = distill(task, teacher, config, max_unlabelled, cache_dir, progress=progress,
                     teacher_budget=teacher_budget, synthetic_per_class=synthetic_per_class,
                     work_dir=work_dir, resume=resume, guard_folds=guard_folds, search_trials=search_trials,
                     budget=budget)
    evaluations = [teacher_report.teacher, evaluate_student("student-base", result.student_base, task)]
    if result.student_tuned is not None:
        evaluations.append(evaluate_student("student-tuned", result.student_tuned, task))
    model_dir = None
    if out_dir is not None and is_main_process():  # torchrun: rank 0 alone writes model/ and the tarball
        student = result.student
        model_dir = export_model(student.model, student.tokenizer, student.log_history,
                                 metadata(task, teacher_spec, config, result, evaluations, max_unlabelled),
                                 out_dir, Path(out_dir).resolve().parent / f"{task.name}-model.tar")
    return RunReport(task, teacher_report, result, evaluations, model_dir, time.perf_counter() - start)
