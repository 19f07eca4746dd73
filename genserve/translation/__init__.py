"""Translation: a MarianMT transformer run in ONNX Runtime, with its attention visible."""
