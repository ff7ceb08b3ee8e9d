"""Sizes the course holds user input to, in one place so messages and code agree.

Each limit is checked where the input is read, and each message that mentions
one takes its number from here.
"""

from __future__ import annotations

EMBEDDER_TOKENS = 256  # the sentence embedder's window (seed classifier, leak check, retrieval), as MiniLM was trained
MIN_WINDOW = 128  # the student's window (word pieces, [CLS] and [SEP] included) on a task of short texts
MAX_WINDOW = EMBEDDER_TOKENS  # the most it reads; the window is chosen from the data in between (helpers/window.py)
TOKENS_PER_WORD = 1.45  # MiniLM word pieces per word: median 1.44 on our example tasks (measured)


def words_in(window: int) -> int:
    """About how many words fill a window of word pieces ([CLS] and [SEP] take two)."""
    return int((window - 2) / TOKENS_PER_WORD)


LONG_TEXT_WORDS = words_in(MAX_WINDOW)  # ~175 words fill the longest window; more is always cut

TEACHER_TEXT_WORDS = 700  # of one text in an LLM teacher's prompt (~1,000 tokens): fits a 4,096-token server
EXAMPLE_TEXT_WORDS = 150  # of one seed row shown to an LLM teacher as an example, so several fit


def saved_window(tokenizer, max_positions: int) -> int:
    """The window a saved student reads: training records it as the tokenizer's
    ``model_max_length`` (tokenizer_config.json), so a plain ``TextClassificationPipeline``
    called with ``truncation=True`` cuts texts where training did. A model from elsewhere
    may say more than its position table holds (or 10^30 for "no limit"): that caps it."""
    return min(int(tokenizer.model_max_length), max_positions)


MAX_CELL_CHARS = 20_000  # one text; a longer cell is almost always a paste gone wrong
MAX_CLASS_NAME_CHARS = 200  # a class name is a label, not a paragraph
MAX_CSV_BYTES = 256 * 1024**2  # one CSV: ~100,000 long texts
MAX_JSON_BYTES = 4 * 1024**2  # job_description.json: descriptions, not data
MAX_JSON_DEPTH = 20  # deeper nesting is never a job description, and can exhaust the parser's stack
MAX_REPEATS = 5  # the same problem more often than this is summarised in one line
