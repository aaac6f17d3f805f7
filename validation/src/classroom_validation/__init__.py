"""Validation of the project on a GPU host (driven by playbooks/validate.yml) and offline bundles."""

__version__ = "0.1.0"
# 1: results of the former one-process driver (still read by the summarizer); 2: one process per step.
SCHEMA_VERSION = 2
