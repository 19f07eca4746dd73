"""Process-level commands, apart from the library's core: ``genserve serve`` (the
launcher), ``genserve init`` (container volumes and keys) and ``genserve bench gateway``.
They start and stop servers; the library they call never does."""
