"""Makes the roles' Ansible modules importable in tests exactly as Ansible imports them.

A role's module_utils are imported as ``ansible.module_utils.<name>`` (the only way the modules
import them), so each role's module_utils folder joins that package's search path; each role's
library folder goes on sys.path so tests import a module by its file name.
"""

from __future__ import annotations

import sys
from pathlib import Path

import ansible.module_utils

ROLES = Path(__file__).resolve().parents[1] / "roles"

for _utils in sorted(ROLES.glob("*/module_utils")):
    if str(_utils) not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(str(_utils))
for _library in sorted(ROLES.glob("*/library")):
    if str(_library) not in sys.path:
        sys.path.insert(0, str(_library))
