"""classroom_probe: a load generator and judge for an LLM server that serves a classroom."""

__version__ = "0.1.0"
SCHEMA_VERSION = 2

__all__ = ["SCHEMA_VERSION", "__version__"]
