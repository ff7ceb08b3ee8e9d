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


def task_folders(root: str | Path = "..") -> list[str]:
    """The task folders next to the notebooks, to copy into TASK_DIR (a dropdown here changed nothing)."""
    return sorted(str(p) for p in Path(root).glob("data-*") if (p / "job_description.json").exists())


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


def label_texts(texts: list[str], classes: list[str], path: Path) -> widgets.VBox:
    """A class dropdown per text and a Save button that writes your choices into `path`.

    Rows already in the file are kept (your earlier labels and any rows you added by
    hand); only the answers of the texts shown here are set. The task's own files
    are never touched.
    """
    import pandas as pd

    menus = [widgets.Dropdown(options=["(skip)", *classes], description=f"{i + 1}.",
                              layout=widgets.Layout(width="40%")) for i in range(len(texts))]
    status, save = widgets.HTML(), widgets.Button(description="Save labels", button_style="primary")

    def on_save(_=None) -> None:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False) if path.exists() else \
            pd.DataFrame(columns=["question", "answer"])
        chosen = {t: m.value for t, m in zip(texts, menus) if m.value != "(skip)"}
        frame = frame[~frame["question"].isin(chosen)]
        frame = pd.concat([frame, pd.DataFrame({"question": list(chosen), "answer": list(chosen.values())})])
        frame.to_csv(path, index=False)
        status.value = f"Saved {len(chosen)} label(s) to {html.escape(str(path))}. Run the next cell."

    save.on_click(on_save)
    rows = [widgets.VBox([widgets.HTML(f"<b>{i + 1}.</b> {html.escape(t)}"), m])
            for i, (t, m) in enumerate(zip(texts, menus))]
    return widgets.VBox([*rows, save, status])
