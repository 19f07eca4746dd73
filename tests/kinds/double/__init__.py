"""A throwaway fourth model kind for the tests: ``double``, an ONNX graph that doubles a
vector. It lives only in this folder (its contract, its model and its service) and is
registered with GENSERVE_MODELS_EXTRA_KINDS, which shows that adding a kind touches
nothing else."""
