"""The operating-system packages of a bundle: downloaded inside a container of the host's release (so the
versions and dependencies are that release's and what its image lacks), indexed as a flat apt repository.

The roles' own packages come from their argument specs, the one source of those lists: a role that needs
one more package carries it into every bundle built after the change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from classroom_validation.bundle.command import run
from classroom_validation.bundle.spec import BundleError

# Role variables whose spec default names packages the role installs with apt.
ROLE_PACKAGE_VARIABLES = (
    ("vllm_server", "vllm_server_system_packages"),
    ("gateway", "gateway_package"),
    ("monitoring", "monitoring_packages"),
    ("monitoring", "monitoring_alertmanager_package"),
)
# Installed by the roles without a variable: Ansible's apt module needs python3-apt on the host, and
# vllm_server's optional firewall needs nftables.
ROLE_FIXED_PACKAGES = ("python3-apt", "nftables")

# Runs in the container: what the image lacks of the packages, with their dependencies, into /out; then
# apt-utils (after the download, so it is not carried unless asked for) writes the Packages index.
_SCRIPT = r"""
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
mkdir -p /out/partial
apt-get install -qq -y --no-install-recommends --download-only -o Dir::Cache::archives=/out/ "$@" >/dev/null
rm -rf /out/partial /out/lock
apt-get install -qq -y --no-install-recommends apt-utils >/dev/null 2>&1
cd /out && apt-ftparchive packages . > Packages
"""


def role_packages(repo: Path) -> list[str]:
    """The packages the project's roles install, read from their argument specs and ROLE_FIXED_PACKAGES."""
    import yaml  # noqa: PLC0415 - only a build that carries packages needs PyYAML

    names: list[str] = list(ROLE_FIXED_PACKAGES)
    for role, variable in ROLE_PACKAGE_VARIABLES:
        path = repo / "roles" / role / "meta" / "argument_specs.yml"
        try:
            spec: dict[str, Any] = yaml.safe_load(path.read_text())
            default = spec["argument_specs"]["main"]["options"][variable]["default"]
        except (OSError, KeyError, TypeError) as exc:
            raise BundleError(f"cannot read {variable}'s default from {path}: {exc}") from exc
        names.extend([default] if isinstance(default, str) else default)
    return sorted(set(names))


def download(dest: Path, image: str, packages: list[str], tool: str, log: Callable[[str], None]) -> list[str]:
    """The .deb files of `packages` and their dependencies that `image` lacks, and a Packages index."""
    dest.mkdir(parents=True, exist_ok=True)
    log(f"downloading {', '.join(packages)} and their dependencies for {image} ({tool})")
    command = [tool, "run", "--rm", "-v", f"{dest.resolve()}:/out", image, "bash", "-c", _SCRIPT, "debs", *packages]
    run(command, f"downloading the packages in {image}",
        missing_hint="the packages are downloaded in a container: --container-tool names the tool")
    if not (dest / "Packages").is_file():
        raise BundleError(f"downloading the packages in {image} wrote no Packages index")
    return sorted(p.name for p in dest.glob("*.deb"))
