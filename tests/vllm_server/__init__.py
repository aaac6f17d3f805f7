"""Unit tests of the vllm_server role's modules and helper scripts."""
