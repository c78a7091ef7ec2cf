"""Where a migration starts: the model ids a codebase uses, joined with when their providers retire them.

``scan_codebase(path, load_registry([...]), today)`` returns a ``ScanResult``:
one ``ModelUsage`` per model (its uses with file:line, its ``Lifecycle``),
sorted by shutdown date.
"""

from changeover.scan.join import ModelUsage, ScanResult, Use, parse_within, scan_codebase
from changeover.scan.match import Match, Matcher
from changeover.scan.registry import BUNDLED, Lifecycle, Registry, ScanError, load_registry, read_registry_file

__all__ = [
    "BUNDLED",
    "Lifecycle",
    "Match",
    "Matcher",
    "ModelUsage",
    "Registry",
    "ScanError",
    "ScanResult",
    "Use",
    "load_registry",
    "parse_within",
    "read_registry_file",
    "scan_codebase",
]
