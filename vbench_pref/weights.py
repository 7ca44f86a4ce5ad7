"""Weight manifests: where each weight file comes from, its sha256 and licence; local-file overrides."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vbench_pref.errors import VbenchPrefError, WeightsMissingError


@dataclass(frozen=True)
class WeightSpec:
    """One weight file an evaluator needs.

    ``source`` is a Hugging Face repo id (``hf://owner/name``) or a URL; ``sha256`` may be a full digest
    or, for sources that publish only a prefix (torchvision's file names), the known prefix.
    """

    name: str
    source: str
    filename: str
    sha256: str
    licence: str
    size_bytes: int | None = None
    revision: str | None = None
    env_var: str | None = None  # a local file given through this environment variable wins

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "filename": self.filename,
            "revision": self.revision,
            "sha256": self.sha256,
            "licence": self.licence,
            "size_bytes": self.size_bytes,
            "env_var": self.env_var,
        }


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> str:
    """Return the file's sha256; refuse it when it does not match ``expected`` (full digest or prefix)."""
    actual = sha256_file(path)
    if expected and not actual.startswith(expected.lower()):
        raise VbenchPrefError(
            f"{path}: sha256 {actual[:16]}… does not match the expected {expected[:16]}…; "
            "the file is corrupt or a different checkpoint"
        )
    return actual


def find_local_weight(spec: WeightSpec, explicit: str | None, search_dirs: list[Path]) -> Path | None:
    """A weight file given explicitly, through ``spec.env_var``, or already present in a cache dir."""
    for candidate in (explicit, os.environ.get(spec.env_var) if spec.env_var else None):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise WeightsMissingError(f"{spec.name}: weight file {path} does not exist")
            return path
    for directory in search_dirs:
        path = directory / spec.filename
        if path.is_file():
            return path
    return None
