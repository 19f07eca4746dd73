"""The range of every request parameter, in one light module.

The library checks against these, the services' request schemas publish them, and the
gateway validates with the same schemas without loading a model runtime.
"""

from __future__ import annotations

# GAN sampling
MAX_SEED = 2**64 - 1
MAX_SAMPLES = 64
MIN_FRAMES, MAX_FRAMES = 2, 64

# Translation
MAX_TEXTS = 64
MAX_CHARS = 4096
MAX_BEAMS = 8
MAX_NEW_TOKENS = 512

# Image generation
MAX_PROMPT_CHARS = 1000
MAX_IMAGES = 16
MAX_STEPS = 150
MIN_SIDE, MAX_SIDE = 16, 1024
