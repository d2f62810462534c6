"""Language-model work: generation and embeddings, with what each figure was measured by."""
