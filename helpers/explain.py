"""Plain words for the training notebook: what the numbers above a learner actually say.

Every function reads real results (never a canned story) and returns text, so a
cell stays one line and the same sentences can be tested.
"""

from __future__ import annotations

import pandas as pd

from helpers.evaluate import Evaluation, TeacherReport
from helpers.limits import words_in


def training_plan(name: str, config, n_rows: int, n_classes: int) -> str:
    """One line above Trainer's table: which student it is, and why the epoch count exceeds EPOCHS.

    The table alone shows e.g. "Epoch 30/30" under EPOCHS = 5 and a "Score" column
    nobody defined; this says where both come from.
    """
    from helpers.student import planned_epochs

    steps_per_epoch = max(1, -(-n_rows // config.batch_size))
    epochs = planned_epochs(config, n_rows, n_classes)
    floor = (f"; at least {config.floor_steps(n_classes)} steps so a fresh head can learn, which takes "
             f"{epochs} epochs of {steps_per_epoch} steps" if epochs > config.epochs else
             f" of {steps_per_epoch} steps, not {config.epochs}: a cap of {config.max_steps} steps keeps a big corpus "
             "to minutes (MAX_STEPS)" if epochs < config.epochs else "")
    name = {"base": "student-base", "tuned": "student-tuned (the one the guard judges)",
            "tuned-refit": "student-tuned again, taught by the teacher that saw every seed row",
            "base-refit": "student-base again, on every seed row (the guard's held-out rows too)"
            }.get(name, name.replace("search/", "recipe search ") if name.startswith("search/")
                  else f"guard check {name}")
    warm = {"probe": " Its head starts from a linear probe on the pooler.",
            "align": " First the pooler is aligned to the sentence embedding (no labels needed); the head starts "
                     "random.",
            "align+probe": " First the pooler is aligned to the sentence embedding (no labels needed), then the "
                           "head starts from a linear probe on it.",
            "align+contrast+probe": " First the pooler is aligned to the sentence embedding, then the body learns "
                                    "from pairs of seed rows which texts share a class (as SetFit does), then the "
                                    "head starts from a linear probe on it.",
            "contrast+align+probe": " First the body learns from pairs of seed rows which texts share a class, on "
                                    "its mean-pooled sentence embedding (SetFit's way), then the pooler is aligned "
                                    "to that embedding, then the head starts from a linear probe on it."
            }.get(config.warm_start, "")
    return (f"Training {name}: {n_rows} training rows, {epochs} epoch{'s' * (epochs != 1)}{floor}.{warm} "
            "Early stopping may end it sooner. "
            "Score = validation accuracy - 0.001 x validation loss, the tie-breaker that picks the best "
            "checkpoint.")


def committee_weights(teacher) -> str:
    """The committee's fitted weights, and in plain words when the LLM got none.

    A teacher row equal to the seed-only classifier's is no mystery once the
    learner sees the LLM's weight of 0: the committee then *is* that classifier.
    """
    weights = getattr(teacher, "weights", None)
    if teacher.spec == "seed":
        return ("Teacher 'seed': the seed-only classifier itself, the baseline every teacher must beat. "
                "Its labels spread what the seed rows say over the unlabelled texts, nothing more.")
    if getattr(teacher, "contrastive", None):
        return (f"Teacher {teacher.spec!r}: the seed-only classifier on a MiniLM first trained on "
                f"{teacher.contrastive['contrastive_pairs']:,} pairs of seed rows (same class or not), as "
                "SetFit does. No LLM: it knows only what the seed rows say, but it reads them better.")
    if weights is None:
        return f"Teacher {teacher.spec}: a single model, no committee."
    seed_w, llm_w = (float(w) for w in weights)
    lines = [f"Committee weights: seed classifier {seed_w:.1f}, LLM {llm_w:.1f} "
             "(fitted on seed rows neither member saw)."]
    if llm_w == 0:
        lines.append("The LLM got weight 0: on those rows it did not help, so it is not asked at all and "
                     "the teacher is in effect the seed-only classifier. That is why their rows below match.")
    elif seed_w == 0:
        lines.append("The seed classifier got weight 0: the LLM alone labels the texts.")
    return "\n".join(lines)


def teacher_verdict(report: TeacherReport) -> str:
    """Teacher vs seed-only classifier on test: worse, equal or better, and what that means."""
    if report.warning:
        return "WARNING: " + report.warning
    teacher, baseline = report.teacher, report.baseline
    if teacher.name == "teacher (seed)":
        return "The teacher is the seed-only classifier, so both rows are the same by construction."
    if round(teacher.accuracy, 6) == round(baseline.accuracy, 6):
        return (f"The teacher is exactly as accurate as the seed-only classifier ({teacher.accuracy:.1%}): "
                "its labels can teach student-tuned little that the seed rows do not. A stronger TEACHER "
                "(an `openai:` server or `hf:` model on a GPU) is where real gains come from.")
    return (f"The teacher beats the seed-only classifier by {teacher.accuracy - baseline.accuracy:+.1%} "
            "accuracy: its labels carry knowledge the seed rows lack.")


def distill_summary(result) -> str:
    """What `distill` did, in a few lines instead of its raw stats dict."""
    stats = result.stats
    lines = [f"Seed rows: {stats['seed_rows']} to train on, {stats['validation_rows']} held out for validation."]
    if stats.get("dropped_test_leaks"):
        lines.append(f"Unlabelled texts dropped as (near) copies of test texts: {stats['dropped_test_leaks']}.")
    if "teacher_rows" in stats:
        capped = sum(stats.get("capped_per_class", {}).values())
        lines.append(f"Teacher rows used: {stats['teacher_rows']} of {len(result.unlabelled_texts)} texts "
                     f"({capped} dropped by the per-class cap, {stats['invalid']} invalid answers).")
    guard = stats.get("guard")
    if guard:
        base, tuned = guard["student-base"], guard["student-tuned"]
        lines.append(f"Never-worse guard on {base['rows']} held-out rows ({guard['folds']} fold(s)): "
                     f"student-base {base['accuracy']:.0%}, student-tuned {tuned['accuracy']:.0%}.")
    lines.append(f"Kept: {result.chosen}" + (" (retrained from the teacher that saw every seed row)"
                                             if "refit_teacher" in stats else "")
                 + (f", retrained on every seed row, the guard's {stats['learned_held_out_rows']} held-out rows too."
                    if "learned_held_out_rows" in stats else "."))
    lines += [f"Time budget: {line}." for line in stats.get("budget", {}).get("skipped", [])]
    return "\n".join(lines)


def overlap(a: Evaluation, b: Evaluation) -> bool:
    """Do the two accuracy intervals overlap (then the test set cannot tell them apart)?"""
    return a.accuracy_ci[0] <= b.accuracy_ci[1] and b.accuracy_ci[0] <= a.accuracy_ci[1]


def interpret(evaluations: list[Evaluation], chosen: str, test_rows: int) -> str:
    """Read the final table back: who won, by how much, whether it is clear, which class got worse."""
    by_name = {e.name: e for e in evaluations}
    best = max(evaluations, key=lambda e: (e.accuracy, e.macro_f1))
    lines = [f"Best on test: {best.name} with {best.accuracy:.1%} accuracy "
             f"({round(best.accuracy * test_rows)} of {test_rows} rows)."]
    kept, base = by_name.get(chosen), by_name.get("student-base")
    for other in evaluations:
        if other is kept:
            continue
        gap = kept.accuracy - other.accuracy
        clear = "the intervals overlap, so this test set cannot tell them apart" if overlap(kept, other) \
            else "the intervals do not overlap: a clear difference"
        lines.append(f"Kept {chosen} vs {other.name}: {gap:+.1%} ({round(gap * test_rows):+d} rows); {clear}.")
    if "student-tuned" in by_name and base is not None:
        tuned = by_name["student-tuned"]
        change = (tuned.per_class["recall"] - base.per_class["recall"]).sort_values()
        worse = change[change < 0]
        if len(worse):
            lines.append("Classes student-tuned finds less often than student-base (recall): "
                         + ", ".join(f"{name} {value:+.2f}" for name, value in worse.items()) + ".")
        else:
            lines.append("No class got worse from student-base to student-tuned (recall).")
    return "\n".join(lines)


def payoff(teacher_eval: Evaluation, student_eval: Evaluation, teacher_params: int | None,
           student_params: int) -> str:
    """Size and speed of the kept student next to the teacher: what distillation buys."""
    lines = [f"Student: {student_params / 1e6:.0f}M parameters, "
             f"{1000 * (student_eval.seconds_per_text or 0):.1f} ms per test text on this CPU."]
    if not teacher_params:
        lines.append("Teacher: no LLM is asked (the seed classifier alone, or a remote server), so there is "
                     "no size to compare; with a capable LLM teacher this is where the student wins big.")
        return "\n".join(lines)
    lines.append(f"Teacher: {teacher_params / 1e6:.0f}M parameters, the student is "
                 f"{teacher_params / student_params:.1f}x smaller.")
    teacher_seconds, how = teacher_seconds_per_text(teacher_eval)
    if teacher_seconds and student_eval.seconds_per_text:
        lines.append(f"Teacher: {1000 * teacher_seconds:.1f} ms per test text {how} "
                     f"({teacher_seconds / student_eval.seconds_per_text:.1f}x the student's).")
    return "\n".join(lines)


def teacher_seconds_per_text(teacher_eval: Evaluation) -> tuple[float | None, str]:
    """The teacher's time per text in a batch, and how it was measured.

    The labelling pass reads cached answers at once on a re-run, so it would show an LLM
    teacher faster than its student; `teacher_eval.speed` (payoff.teacher_speed) times
    `predict` afresh on the same texts, batched as the student's evaluation is.
    """
    speed = teacher_eval.speed or {}
    if speed.get("texts_per_second"):
        return 1 / speed["texts_per_second"], f"in a batch of {speed['batch']}, timed afresh"
    return teacher_eval.seconds_per_text, "in the labelling pass above (cached answers make it look faster)"


def parameter_count(model) -> int:
    """Parameters of a torch model (0 for anything else)."""
    return sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else 0


def teacher_parameters(teacher) -> int | None:
    """Parameters of the LLM the teacher really asks, None when it asks none (seed-only, HTTP).

    A committee whose LLM got weight 0 never runs it, so its size is not counted.
    """
    members = getattr(teacher, "members", [teacher])
    weights = getattr(teacher, "weights", [1.0] * len(members))
    total = sum(parameter_count(getattr(m, "model", None)) for m, w in zip(members, weights) if w > 0)
    return total or None


def reading_window(task, config) -> str:
    """How much of this task's texts the student reads, measured with its own tokenizer.

    The window is chosen from the seed rows and unlabelled texts (helpers/window.py);
    a learner should see what it holds and how much it still cuts before training.
    """
    from helpers.limits import MAX_WINDOW, MIN_WINDOW
    from helpers.window import WINDOW_QUANTILE, backbone_tokenizer, choose_window, token_lengths

    tokenizer, positions = backbone_tokenizer(config.backbone)
    window = config.max_length
    chosen = choose_window(token_lengths(task.train["text"].tolist() + task.unstructured["text"].tolist(),
                                         tokenizer), positions)
    how = (f"chosen from this task's texts: the shortest that holds {WINDOW_QUANTILE:.0%} of the seed and "
           f"unlabelled texts whole, between {MIN_WINDOW} and {MAX_WINDOW}" if window == chosen else
           f"set by you (MAX_LENGTH); chosen from this task's texts it would be {chosen}")
    lines = [f"The student reads the first {window} word pieces of a text (about {words_in(window)} words); "
             "the rest is ignored, in training and in deployment.", f"  The window was {how}."]
    for name, texts in [("train", task.train["text"]), ("test", task.test["text"]),
                        ("unlabelled", task.unstructured["text"])]:
        if len(texts):
            lengths = pd.Series(token_lengths(list(texts), tokenizer))
            lines.append(f"  {name:<10} {len(texts):>5} texts: median {lengths.median():.0f} word pieces, "
                         f"90th percentile {lengths.quantile(0.9):.0f}, longest {lengths.max()}; "
                         f"{(lengths > window).mean():.0%} are cut")
    return "\n".join(lines)
