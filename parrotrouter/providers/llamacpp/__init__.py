"""Local GGUF models run in-process by llama.cpp (`llama-cpp-python`, the `local` extra).

Importing this package imports nothing heavy: `kind.PROVIDER` declares the provider type, and the
provider itself (`provider.LlamaCppProvider`) is imported when one is built.
"""
