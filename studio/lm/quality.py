"""Quality of a language-model variant against its FP32 reference, each metric saying how it was measured.

* Perplexity on a text that ships with every Python: two prose sections of the Python Language
  Reference kept in the standard library's ``pydoc_data.topics`` (what ``help()`` shows; PSF licence).
  The text is read in non-overlapping windows, teacher-forced: exp(mean negative log-likelihood).
* Retrieval agreement for encoders: for each fixed query, is the variant's best-matching document the
  FP32 model's? (and how many of the top 3 are shared).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from studio.vectors import unit_rows

TEXT_TOPICS = ("exceptions", "naming")
TEXT_SOURCE = ("the Python Language Reference sections 'Exceptions' and 'Naming and binding' as shipped in the "
               "standard library's pydoc_data.topics (Python {version}, PSF licence)")

DOCUMENTS = (
    "The train to the airport leaves every twenty minutes from platform two.",
    "Preheat the oven to 200 degrees and bake the bread for forty minutes.",
    "The striker scored twice in the second half and won the match.",
    "Our quarterly revenue grew by eight percent compared with last year.",
    "Water boils at a lower temperature at high altitude.",
    "The museum opens at nine and closes at five on weekdays.",
    "Regular exercise lowers the risk of heart disease.",
    "The new phone has a larger battery and a brighter screen.",
    "Cats sleep for most of the day and hunt at dusk.",
    "The treaty was signed in 1648 and ended the war.",
    "Plant the tomatoes after the last frost in a sunny spot.",
    "The compiler reports an error when a variable is used before it is defined.",
)
QUERIES = (
    ("How often is there a train to the airport?", 0),
    ("How long should I bake bread?", 1),
    ("Who won the football game?", 2),
    ("Did the company's income increase?", 3),
    ("Why does water boil faster in the mountains?", 4),
    ("When can I visit the museum?", 5),
    ("Is working out good for the heart?", 6),
    ("Which smartphone lasts longer on a charge?", 7),
    ("When do cats hunt?", 8),
    ("When did the war end?", 9),
    ("When should I plant tomatoes?", 10),
    ("Why does my program fail to build?", 11),
)


def reference_text() -> tuple[str, str]:
    """(text, where it comes from)."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[name] for name in TEXT_TOPICS)
    return text, TEXT_SOURCE.format(version=".".join(map(str, sys.version_info[:3])))


def text_tokens(tokenizer: Any, max_tokens: int) -> list[int]:
    text, _ = reference_text()
    return list(tokenizer(text)["input_ids"])[:max_tokens]


def perplexity(logits_of: Callable[[list[int]], np.ndarray], tokens: list[int], window: int = 256) -> dict[str, Any]:
    """exp(mean NLL) of ``tokens`` under the model, read in non-overlapping windows of ``window`` tokens."""
    total_nll, count = 0.0, 0
    for start in range(0, len(tokens) - 1, window):
        chunk = tokens[start:start + window]
        if len(chunk) < 2:
            break
        logits = np.asarray(logits_of(chunk), np.float64)[:-1]
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        targets = np.asarray(chunk[1:])
        total_nll -= float(log_probs[np.arange(len(targets)), targets].sum())
        count += len(targets)
    _, source = reference_text()
    return {"perplexity": round(math.exp(total_nll / max(count, 1)), 3), "tokens": count,
            "method": f"teacher-forced over {count} predicted tokens in windows of {window}, exp(mean NLL); text: "
                      f"{source}"}


def retrieval(encode: Callable[[list[str]], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(query × document cosine matrix, ranked document indices per query) for the fixed set."""
    vectors = np.asarray(encode([q for q, _ in QUERIES] + list(DOCUMENTS)), np.float64)
    vectors = unit_rows(vectors)
    scores = vectors[:len(QUERIES)] @ vectors[len(QUERIES):].T
    return scores, np.argsort(-scores, axis=1)


def retrieval_agreement(reference: Callable[[list[str]], np.ndarray],
                        variant: Callable[[list[str]], np.ndarray]) -> dict[str, Any]:
    ref_scores, ref_rank = retrieval(reference)
    var_scores, var_rank = retrieval(variant)
    top1 = float(np.mean(ref_rank[:, 0] == var_rank[:, 0]))
    top3 = float(np.mean([len(set(a[:3]) & set(b[:3])) / 3 for a, b in zip(ref_rank, var_rank, strict=True)]))
    correct = [float(np.mean(rank[:, 0] == np.array([d for _, d in QUERIES]))) for rank in (ref_rank, var_rank)]
    return {"top1_agreement": round(top1, 4), "top3_overlap": round(top3, 4),
            "reference_top1_correct": round(correct[0], 4), "variant_top1_correct": round(correct[1], 4),
            "max_score_difference": round(float(np.abs(ref_scores - var_scores).max()), 4),
            "method": f"{len(QUERIES)} fixed queries against {len(DOCUMENTS)} fixed documents (studio/lm/quality.py), "
                      "cosine similarity; top-1 agreement = share of queries whose best document is the FP32 "
                      "model's; top-3 overlap = shared share of the three best"}
