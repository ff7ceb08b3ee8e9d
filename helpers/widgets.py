"""Widgets for learners who would rather click. Nothing here blocks a headless run:
widgets only render; papermill and nbval execute the cells and move on."""

from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as widgets
from IPython.display import Markdown


def job_description(task) -> Markdown:
    """The task's job description rendered as Markdown."""
    lines = [f"### {task.name}", task.description, "", "| class | description |", "| --- | --- |"]
    lines += [f"| `{name}` | {html.escape(text)} |" for name, text in task.class_descriptions.items()]
    return Markdown("\n".join(lines))


def task_picker(root: str | Path = "..", current: str = "") -> widgets.Dropdown:
    """A dropdown of the task folders next to the notebooks; pick one, then re-run from the top."""
    options = sorted(str(p) for p in Path(root).glob("data-*") if (p / "job_description.json").exists())
    value = current if current in options else (options[0] if options else None)
    return widgets.Dropdown(options=options, value=value, description="Task:")


def probability_bars(probs: dict[str, float]) -> str:
    """HTML bars, widest first; plain HTML so it renders in any front end."""
    rows = []
    for label, p in sorted(probs.items(), key=lambda kv: -kv[1]):
        rows.append(f"<div style='font-family:monospace'>{html.escape(label):<40} "
                    f"<span style='display:inline-block;background:#4c72b0;height:0.8em;"
                    f"width:{int(300 * p)}px'></span> {p:.1%}</div>")
    return "".join(rows)


def try_sentence(student, classes: list[str], example: str = "") -> widgets.VBox:
    """A text box: type a sentence, see the student's class probabilities as bars."""
    box = widgets.Text(value=example, placeholder="Type a sentence and press Enter",
                       description="Sentence:", layout=widgets.Layout(width="90%"))
    output = widgets.HTML()

    def update(_=None) -> None:
        text = box.value.strip()
        if text:
            probs = student.predict_proba([text])[0]
            output.value = probability_bars(dict(zip(classes, map(float, probs))))

    box.observe(update, names="value")
    update()
    return widgets.VBox([box, output])
