"""Local GGUF models run in-process by llama.cpp (`llama-cpp-python`, the `local` extra)."""

from .provider import LlamaCppProvider

__all__ = ["LlamaCppProvider"]
