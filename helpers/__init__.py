"""helpers: the small library behind the LLM-to-SLM distillation notebooks."""

import helpers.models  # noqa: F401  (first: sets OMP_WAIT_POLICY before anything loads torch)
from helpers.problems import Problem, TaskError
from helpers.task import Task, inspect_task, load_task

__all__ = ["Problem", "Task", "TaskError", "inspect_task", "load_task"]
