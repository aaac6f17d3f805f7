"""Unit tests of the gpu_preflight role: parsers, model shapes, memory plan, checks, modules."""
