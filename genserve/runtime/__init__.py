"""ONNX Runtime: one session wrapper for every model."""

from genserve.runtime.session import OnnxSession, choose_providers

__all__ = ["OnnxSession", "choose_providers"]
