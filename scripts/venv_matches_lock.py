"""Exits 0 when every distribution installed in this interpreter's environment is pinned, at the
installed version, by the given requirement files (markers evaluated for this interpreter), and 1,
naming each difference, when one is not: a package the lock does not know, or another version of it.
jtoolformer itself (the editable install) is left out.

    .venv/bin/python scripts/venv_matches_lock.py requirements/lock.txt requirements/model.txt
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version


def pinned(files: list[str]) -> dict[str, Version]:
    """Name → version of each `name==version [; marker]` line that applies to this interpreter."""
    pins = {}
    for file in files:
        for line in Path(file).read_text().splitlines():
            line = line.split(" #")[0].split(" --hash")[0].strip()
            if not line or line.startswith("#"):
                continue
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate():
                (spec,) = req.specifier
                pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def differences(pins: dict[str, Version]) -> list[str]:
    found = []
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name == "jtoolformer":
            continue
        version = Version(dist.version)
        if name not in pins:
            found.append(f"{name} {version} is installed but not in the lock")
        elif Version(version.public) != pins[name]:
            found.append(f"{name} {version} is installed, the lock has {pins[name]}")
    return sorted(found)


def main() -> int:
    found = differences(pinned(sys.argv[1:]))
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
