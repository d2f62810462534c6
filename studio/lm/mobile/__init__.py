"""TFLite and CoreML files for the language models, at a fixed window of ``seq_len`` tokens, batch 1.

One module per job: ``kind`` declares what a model kind brings to the export, ``encoder`` (a sentence
encoder, Task.EMBED: ``(input_ids, attention_mask) -> embedding``, pooling and L2 normalisation inside the
graph) and ``decoder`` (a Llama-layout causal LM, Task.GENERATE: ``input_ids -> logits`` over the whole
window, no KV cache: for one, export ONNX, whose onnxruntime-genai folder carries it) are the two kinds;
``common`` picks the kind (every refusal before any work), checks the wrapped or traced module against the
untouched PyTorch model and writes the metadata; ``tflite`` (litert-torch, verified in ai_edge_litert's
interpreter) and ``coreml`` (coremltools, spec-validated on Linux) are the two formats.

Measured here (2 cores, 128 tokens): MiniLM-L6 converts in ~6 s to TFLite (90 MB, cosine 1.0000 to the
pipeline) and ~2 s to CoreML (86 MB); SmolLM2-135M in ~30 s to TFLite (540 MB, argmax agreement 100 %)
and ~4 s trace + ~14 s to CoreML (515 MB).

Not used: litert-torch's re-authored generative models (``litert_torch.generative``: a SmolLM example
and ``export_hf``, both with a KV cache) import TensorFlow, which the studio does not install.
"""

from studio.lm.mobile.coreml import coreml_language
from studio.lm.mobile.tflite import tflite_language

__all__ = ["coreml_language", "tflite_language"]
