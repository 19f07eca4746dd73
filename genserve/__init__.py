"""genserve: generative models served from ONNX Runtime.

The library never imports bentoml or torch at import time; training and export
modules import torch inside the functions that need it.
"""

__version__ = "0.1.0"
