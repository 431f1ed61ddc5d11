"""The YAML configuration file: its schema, loading and checking."""

from .loader import ResolvedConfig, check_config_file, load_config

__all__ = ["ResolvedConfig", "check_config_file", "load_config"]
