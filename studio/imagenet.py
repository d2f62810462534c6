"""ImageNet-1k class names, read from the lists that ship in the timm wheel (located, not imported)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


@cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 class names in the standard index order ("tench", …, "toilet tissue")."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return tuple(f"class{i}" for i in range(1000))
    info = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines())
    return tuple(lemmas[s].split(",")[0].strip() for s in synsets)
