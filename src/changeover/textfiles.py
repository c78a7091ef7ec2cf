"""Writing an output file so a reader never sees half of it: a temp file renamed over the target.

A target that exists and is not a regular file (``/dev/stdout``, a pipe) is written in place:
renaming over it would replace the device with a file.
"""

from __future__ import annotations

from pathlib import Path

from changeover.errors import ChangeoverError


def write_atomic(path: Path, text: str, what: str, error: type[ChangeoverError] = ChangeoverError) -> None:
    """Write ``text`` to ``path``; a failure is ``error`` naming the path, what was written and the cause."""
    try:
        if path.exists() and not path.is_file():
            with path.open("w", encoding="utf-8") as out:
                out.write(text)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise error(
            f"{path}: cannot write {what} ({exc.strerror}); choose another path or check the folder's permissions"
        ) from None
