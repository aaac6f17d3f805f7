"""Offline bundles: everything a host without network needs, built where a package index is reachable.

spec.py reads what goes in (a TOML file: data, not code), resolve.py works out the exact wheels for the
host's Python and platform, build.py writes the bundle (a tar, optionally in parts of a chosen size,
with checksums), and install.py, copied beside it, verifies and installs it on the host.
"""
