"""Open Inference Protocol v2 (KServe / Triton): tensors on the wire <-> numpy."""
