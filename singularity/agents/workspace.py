"""Files the code_quality and documentation agents may read and change: checks, hashing, atomic writes.

Every path is resolved against ``settings.AGENTS_WORKSPACE_ROOT``. A path that leaves the root,
directly (``..``, an absolute path elsewhere) or through a symlink, is rejected, as are binary files,
files over ``AGENTS_MAX_FILE_BYTES`` and anything that is not a regular file.
"""
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from .base import ActConflict, ActFailed, InvalidAgentInput


class WorkspaceError(InvalidAgentInput):
    """A path or file the file agents must not touch; the message names the path and the reason."""


@dataclass(frozen=True)
class WorkspaceFile:
    """A text file inside the workspace: its path relative to the root, real path, text and hash."""

    relative: str
    real_path: Path
    text: str
    sha256: str


def workspace_root() -> Path:
    return Path(settings.AGENTS_WORKSPACE_ROOT).resolve()


def resolve(path: str) -> tuple[str, Path]:
    """Return (path relative to the root, real path) of ``path``; raise ``WorkspaceError`` if it leaves the root."""
    if not isinstance(path, str):
        raise WorkspaceError(f"path {path!r} is not a string ({type(path).__name__}): give a file path relative to the workspace root.")
    if not path.strip():
        raise WorkspaceError("path is missing: give a file path relative to the workspace root.")
    if "\x00" in path:
        raise WorkspaceError(f"path {path!r} contains a NUL character.")
    root = workspace_root()
    lexical = Path(os.path.normpath(root / path))
    if not lexical.is_relative_to(root):
        raise WorkspaceError(
            f"path {path!r} is outside the workspace root {root}; give a path inside it (AGENTS_WORKSPACE_ROOT)."
        )
    real = lexical.resolve()
    if not real.is_relative_to(root):
        raise WorkspaceError(f"path {path!r} is a symlink, or inside one, that leads outside the workspace root {root}.")
    return str(lexical.relative_to(root)), real


def read(path: str) -> WorkspaceFile:
    """Read a text file of the workspace; raise ``WorkspaceError`` for anything the agents must not change."""
    relative, real = resolve(path)
    if not real.exists():
        raise WorkspaceError(f"path {path!r} does not exist in the workspace root {workspace_root()}.")
    if not real.is_file():
        raise WorkspaceError(f"path {path!r} is not a regular file.")
    size = real.stat().st_size
    if size > settings.AGENTS_MAX_FILE_BYTES:
        raise WorkspaceError(
            f"file {path!r} has {size} bytes; the agents read at most {settings.AGENTS_MAX_FILE_BYTES} "
            "(AGENTS_MAX_FILE_BYTES)."
        )
    data = real.read_bytes()
    return WorkspaceFile(relative, real, decode_text(data, path), sha256(data))


def decode_text(data: bytes, path: str) -> str:
    """Return ``data`` as UTF-8 text; raise ``WorkspaceError`` for a binary file."""
    if b"\x00" in data:
        raise WorkspaceError(f"file {path!r} is binary (it contains NUL bytes); the agents change only text files.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkspaceError(f"file {path!r} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Replacement:
    """The outcome of ``replace_if_unchanged``: the file's new hash, and whether this call wrote it."""

    sha256: str
    written: bool


def replace_if_unchanged(path: str, base_sha256: str, new_text: str) -> Replacement:
    """Write ``new_text`` to ``path`` if the file still hashes to ``base_sha256``.

    The new content goes to a temporary file in the same folder and replaces the old one with
    ``os.replace``, so readers see the old file or the new one, never a mix. A file that already
    contains ``new_text`` counts as applied, which makes a repeated act step harmless. Raises
    ``ActConflict`` when the file contains anything else, and ``WorkspaceError`` if it has become a
    symlink out of the root or a binary file.
    """
    # NOTE: an editor that writes between the hash check and os.replace below loses its change;
    # the window is one read and one rename long.
    current = read(path)
    new_data = new_text.encode("utf-8")
    new_hash = sha256(new_data)
    if current.sha256 == new_hash:
        return Replacement(new_hash, written=False)
    if current.sha256 != base_sha256:
        raise ActConflict(
            f"{current.relative} changed since the diff was made (sha256 {base_sha256[:12]} expected, "
            f"{current.sha256[:12]} found); nothing was written. Start a new run on the current file."
        )
    target = current.real_path
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".agent", dir=target.parent)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(new_data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, target.stat().st_mode & 0o7777)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ActFailed(f"Writing {current.relative} failed: {exc}.") from exc
    return Replacement(new_hash, written=True)
