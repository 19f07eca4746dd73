"""GAN sampling: a class-conditional generator run in ONNX Runtime."""
