"""Recovery of a compressed model: the shared settings and the distillation toward the original that
pruning, low rank and QAT fine-tune with (``settings``, ``distill``), and what they need per family
(``outputs``, ``distill_loss``, ``task_loss``). The trainer itself is ``studio.train``."""
