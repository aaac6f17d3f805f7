"""GPU validation of the project on a real GPU host: drive the roles, vLLM and the probe, then summarise."""

SCHEMA_VERSION = 1
