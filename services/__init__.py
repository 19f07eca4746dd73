"""BentoML services: thin wire layers over the genserve library."""
