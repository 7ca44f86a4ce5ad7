"""Weight manifests: where each weight file comes from, how it is checked, where it lives on disk.

An evaluator's card lists the files it loads as :class:`WeightSpec` entries. This module finds them
without touching the network (:func:`locate`, :func:`resolve`), checks them (:func:`verify`) and fetches
them on request (:func:`pull`, used by ``vbench-pref weights pull``).

Where files are looked for, in order:

1. a path the user gave (an evaluator option such as ``-O hpsv2.weights=...``): a file, or a folder
   holding ``spec.filename``;
2. the file named by ``spec.env_var``;
3. ``hf://owner/repo`` sources: the Hugging Face cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or
   ``~/.cache/huggingface/hub``), laid out as huggingface_hub lays it out;
4. URL sources (``https://``, ``http://``, ``file://``): ``cache_dir()/weights/<spec.name>/<filename>``
   (``$VBENCH_PREF_CACHE``, ``$XDG_CACHE_HOME/vbench_pref`` or ``~/.cache/vbench_pref``), and torch.hub's
   ``checkpoints`` folder, where torchvision puts the files it downloads itself.

Licences that must be accepted: an entry whose ``accept_licence`` is set (a non-commercial licence, say)
is downloaded only once the user has accepted that licence (``vbench-pref weights pull NAME
--accept-licence``); the acceptance is remembered in ``cache_dir()/licences.json`` by entry name and
licence, so later pulls need no flag. Finding a file already on disk (a path the user gave, a cache) never
asks: acceptance governs downloading only.

How a file is checked: against the manifest's sha256 (a full digest or a published prefix) when there
is one; else, for a Hugging Face LFS file, against the sha256 the cache names its blob after; else
against the manifest's md5; else it is used "unverified". Digests are memoised in
``cache_dir()/verified.json`` by (path, size, mtime) so a 4 GB checkpoint is hashed once.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vbench_pref.atomic import atomic_path, atomic_write_text
from vbench_pref.errors import VbenchPrefError, WeightsMissingError
from vbench_pref.preflight import check_output_folder

VERIFIED_BY = ("manifest sha256", "hub sha256", "md5", "unverified")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_MEMO_VERSION = 1


@dataclass(frozen=True)
class WeightSpec:
    """One weight file an evaluator needs.

    ``source``: ``hf://owner/repo`` (a Hugging Face model repo; ``filename`` is the path inside it,
    ``revision`` a branch, tag or commit), or the ``https://``/``http://``/``file://`` URL of the file.
    ``sha256``: the full digest, a prefix (e.g. the 8 hex digits torchvision puts in its file names), or
    None when the manifest does not pin one. ``md5`` is used only when there is no sha256 to check.
    ``env_var``: a local file given through this environment variable wins over any cache.
    ``companions``: for a model kept as a folder (sharded safetensors, configs, tokenizer), glob patterns of
    the files that travel with ``filename`` (its anchor, e.g. the shard index): ``pull`` fetches them all
    from the hub repo in one snapshot. Only ``hf://`` sources have companions.
    ``accept_licence``: for a file whose licence restricts its use (e.g. non-commercial), the licence's short
    name and URL, which the user must accept before :func:`pull` downloads the file; None for none.
    ``mirrors``: for a URL source, other URLs of the same file, tried in order when ``source`` fails; used
    only when the entry pins a hash, so that a mirror can never substitute a different file.
    """

    name: str
    source: str
    filename: str
    sha256: str | None
    licence: str
    size_bytes: int | None = None
    revision: str | None = None
    env_var: str | None = None
    md5: str | None = None
    description: str = ""
    companions: tuple[str, ...] = ()
    accept_licence: str | None = None
    mirrors: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "filename": self.filename,
            "revision": self.revision,
            "sha256": self.sha256,
            "md5": self.md5,
            "licence": self.licence,
            "size_bytes": self.size_bytes,
            "env_var": self.env_var,
            "description": self.description,
            "companions": list(self.companions),
            "accept_licence": self.accept_licence,
            "mirrors": list(self.mirrors),
        }

    @property
    def is_hf(self) -> bool:
        return self.source.startswith("hf://")

    @property
    def repo_id(self) -> str:
        """``owner/repo`` of an ``hf://`` source."""
        if not self.is_hf:
            raise VbenchPrefError(f"{self.name}: source {self.source} is not a Hugging Face repo (hf://owner/repo)")
        return self.source[len("hf://") :].strip("/")

    @property
    def pinning(self) -> str:
        """How a file of this entry can be checked: sha256 pinned / hub sha256 / md5 / none."""
        if self.sha256:
            return "sha256 pinned"
        if self.is_hf:
            return "hub sha256"
        if self.md5:
            return "md5"
        return "none"


class LicenceNotAccepted(VbenchPrefError):
    """A download of a file whose licence the user has not accepted yet."""


@dataclass(frozen=True)
class ResolvedWeight:
    """A weight file found on disk and checked: what an evaluator loads and run.json records."""

    spec: WeightSpec
    path: Path
    sha256: str  # the full hex digest of the file
    verified_by: str  # one of VERIFIED_BY

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "file": str(self.path),
            "sha256": self.sha256,
            "verified_by": self.verified_by,
            "source": self.spec.source,
            "revision": self.spec.revision,
            "licence": self.spec.licence,
        }


# --------------------------------------------------------------------------------------------- places
def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: ``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``."""
    explicit = _env_path("HF_HUB_CACHE")
    if explicit is not None:
        return explicit
    home = _env_path("HF_HOME")
    if home is not None:
        return home / "hub"
    xdg = _env_path("XDG_CACHE_HOME")
    return (xdg if xdg is not None else Path.home() / ".cache") / "huggingface" / "hub"


def cache_dir() -> Path:
    """vbench_pref's cache: ``$VBENCH_PREF_CACHE``, ``$XDG_CACHE_HOME/vbench_pref`` or ``~/.cache/vbench_pref``."""
    explicit = _env_path("VBENCH_PREF_CACHE")
    if explicit is not None:
        return explicit
    xdg = _env_path("XDG_CACHE_HOME")
    return (xdg if xdg is not None else Path.home() / ".cache") / "vbench_pref"


def url_cache_path(spec: WeightSpec) -> Path:
    """Where :func:`pull` puts the file of a URL source."""
    folder = spec.name.replace("/", "_").replace("\\", "_").strip() or "_"
    return cache_dir() / "weights" / folder / spec.filename


def _torch_hub_checkpoints() -> Path | None:
    try:
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints"
    except Exception:  # noqa: BLE001 - torch is optional here: no torch, no torch.hub cache
        return None


def offline_variable() -> str | None:
    """The variable (HF_HUB_OFFLINE or VBENCH_PREF_OFFLINE) that switches downloads off, if one does."""
    for name in ("HF_HUB_OFFLINE", "VBENCH_PREF_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return name
    return None


def offline() -> bool:
    return offline_variable() is not None


def _managed_roots() -> list[Path]:
    roots = [hf_cache_dir(), cache_dir() / "weights"]
    hub = _torch_hub_checkpoints()
    if hub is not None:
        roots.append(hub)
    return roots


def _is_managed(path: Path) -> bool:
    """True for files inside a download cache (hf, vbench_pref, torch.hub), False for user-supplied ones."""
    candidates = {path.absolute(), path.resolve()}
    for root in _managed_roots():
        root = root.expanduser()
        for base in {root.absolute(), root.resolve()}:
            if any(candidate.is_relative_to(base) for candidate in candidates):
                return True
    return False


# --------------------------------------------------------------------------------------------- locate
def _user_path(spec: WeightSpec, given: str | os.PathLike[str], origin: str) -> Path:
    """A path the user supplied: a file, or a folder holding ``spec.filename``."""
    path = Path(given).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in (path / spec.filename, path / Path(spec.filename).name):
            if candidate.is_file():
                return candidate
        raise WeightsMissingError(f"{spec.name}: folder {path} ({origin}) has no {spec.filename}")
    raise WeightsMissingError(f"{spec.name}: weight file {path} ({origin}) does not exist")


def _hf_cached(spec: WeightSpec) -> Path | None:
    """The file in the Hugging Face cache (no network), via huggingface_hub when it is installed."""
    repo_id, cache = spec.repo_id, hf_cache_dir()
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        found: Any = _try_to_load_from_cache(repo_id, spec.filename, cache, spec.revision)
    else:
        try:
            found = try_to_load_from_cache(repo_id, spec.filename, cache_dir=cache, revision=spec.revision)
        except Exception as exc:  # noqa: BLE001 - e.g. an invalid repo id in a manifest
            raise VbenchPrefError(f"{spec.name}: cannot look up {spec.source}: {_first_line(exc)}") from None
    if isinstance(found, (str, os.PathLike)) and Path(found).is_file():
        return Path(found)
    return None


def _try_to_load_from_cache(repo_id: str, filename: str, cache: Path, revision: str | None) -> Path | None:
    """huggingface_hub's cache layout, read without huggingface_hub (it is an optional dependency)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    revision = revision or "main"
    ref = repo / "refs" / revision
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    path = repo / "snapshots" / commit / filename
    return path if path.is_file() else None


def locate(spec: WeightSpec, local: str | os.PathLike[str] | None = None) -> Path | None:
    """The weight file on disk, or None; never downloads and never hashes.

    ``local`` (an evaluator option) and ``spec.env_var`` take a file or a folder holding
    ``spec.filename``; a path given that way which does not exist raises WeightsMissingError.
    """
    if local:
        return _user_path(spec, local, "given as an option")
    if spec.env_var and os.environ.get(spec.env_var):
        return _user_path(spec, os.environ[spec.env_var], f"from {spec.env_var}")
    if spec.is_hf:
        return _hf_cached(spec)
    path = url_cache_path(spec)
    if path.is_file():
        return path
    hub = _torch_hub_checkpoints()
    if hub is not None and _scheme(spec.source) in {"http", "https"}:
        candidate = hub / Path(spec.filename).name
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------------------------- hashing
def hash_file(path: str | os.PathLike[str], algorithms: Iterable[str] = ("sha256",), chunk_size: int = 1 << 20) -> dict[str, str]:
    """Hex digests of a file, every algorithm in one read."""
    digests = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            for digest in digests.values():
                digest.update(block)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    return hash_file(path, ("sha256",), chunk_size)["sha256"]


def verify_sha256(path: Path, expected: str) -> str:
    """Return the file's sha256; refuse it when it does not match ``expected`` (full digest or prefix)."""
    actual = sha256_file(path)
    if expected and not actual.startswith(expected.lower()):
        raise VbenchPrefError(
            f"{path}: sha256 {actual[:16]}… does not match the expected {expected[:16]}…; "
            "the file is corrupt or a different checkpoint"
        )
    return actual


def _memo_path() -> Path:
    return cache_dir() / "verified.json"


def _read_versioned(path: Path, version: int, key: str) -> dict[str, dict[str, Any]]:
    """The ``key`` table of a small JSON state file; empty when missing, corrupt or of another version."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        table = data[key] if data.get("version") == version else {}
        return {k: v for k, v in table.items() if isinstance(v, dict)}
    except Exception:  # noqa: BLE001 - a missing or corrupt file only costs a rehash or a question
        return {}


def _read_memo() -> dict[str, dict[str, Any]]:
    return _read_versioned(_memo_path(), _MEMO_VERSION, "files")


def _write_memo(key: str, entry: dict[str, Any]) -> None:
    files = _read_memo()
    files[key] = entry
    try:
        atomic_write_text(_memo_path(), json.dumps({"version": _MEMO_VERSION, "files": files}, indent=1, sort_keys=True))
    except OSError:  # a read-only cache only costs a rehash next time
        pass


def file_digests(path: str | os.PathLike[str], md5: bool = False) -> dict[str, str]:
    """sha256 (and md5 when asked) of a file, memoised by (resolved path, size, mtime_ns)."""
    real = Path(path).resolve()
    stat = real.stat()
    key = str(real)
    wanted = ("sha256", "md5") if md5 else ("sha256",)
    entry = _read_memo().get(key)
    if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        if all(isinstance(entry.get(name), str) for name in wanted):
            return {name: entry[name] for name in wanted}
    else:
        entry = None
    digests = hash_file(real, wanted)
    merged = {**(entry or {}), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **digests}
    _write_memo(key, merged)
    return digests


def _remember(path: Path, digests: dict[str, str]) -> None:
    real = path.resolve()
    stat = real.stat()
    _write_memo(str(real), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **digests})


def _hub_blob_sha256(path: Path) -> str | None:
    """The sha256 a Hugging Face cache names an LFS blob after (``blobs/<sha256>``), if ``path`` is one."""
    real = path.resolve()
    if real.parent.name == "blobs" and _HEX64.fullmatch(real.name):
        return real.name
    return None


def _matches(actual: str, expected: str) -> bool:
    return bool(expected) and actual.lower().startswith(expected.strip().lower())


def _short(digest: str) -> str:
    return digest[:12] + ("…" if len(digest) > 12 else "")


def _remedy(spec: WeightSpec, path: Path) -> str:
    if _is_managed(path):
        return f"delete it and run `vbench-pref weights pull {shlex.quote(spec.name)}`"
    return "the file is corrupt or a different checkpoint; pass the right file"


def check(spec: WeightSpec, path: Path, digests: dict[str, str]) -> str:
    """How ``path`` (with these digests) is verified against ``spec``; raises VbenchPrefError on a mismatch."""
    actual = digests["sha256"]
    if spec.sha256:
        if not _matches(actual, spec.sha256):
            raise VbenchPrefError(
                f"{spec.name}: {path} has sha256 {_short(actual)}, the manifest expects "
                f"{_short(spec.sha256.lower())}; {_remedy(spec, path)}"
            )
        return "manifest sha256"
    blob = _hub_blob_sha256(path)
    if blob is not None:
        if actual != blob:
            raise VbenchPrefError(
                f"{spec.name}: {path} has sha256 {_short(actual)}, but the Hugging Face cache stores it as "
                f"blob {_short(blob)}; {_remedy(spec, path)}"
            )
        return "hub sha256"
    if spec.md5:
        if not _matches(digests["md5"], spec.md5):
            raise VbenchPrefError(
                f"{spec.name}: {path} has md5 {_short(digests['md5'])}, the manifest expects "
                f"{_short(spec.md5.lower())}; {_remedy(spec, path)}"
            )
        return "md5"
    return "unverified"


def verify(spec: WeightSpec, path: str | os.PathLike[str]) -> ResolvedWeight:
    """Hash ``path`` (memoised) and check it against ``spec``; a mismatching file raises VbenchPrefError."""
    path = Path(path)
    if not path.is_file():
        raise WeightsMissingError(f"{spec.name}: weight file {path} does not exist")
    needs_md5 = bool(spec.md5) and not spec.sha256 and _hub_blob_sha256(path) is None
    digests = file_digests(path, md5=needs_md5)
    return ResolvedWeight(spec, path, digests["sha256"], check(spec, path, digests))


# --------------------------------------------------------------------------------------------- resolve
def missing_message(
    spec: WeightSpec,
    evaluator: str | None = None,
    option: str | None = None,
    offline_var: str | None = None,
) -> str:
    """One line: which file is missing, where it comes from, and the ways to provide it."""
    who = evaluator or spec.name
    source = spec.source + (f"@{spec.revision}" if spec.revision else "")
    # a licence not yet accepted makes a bare pull refuse: name the flag that accepts it
    accept = " --accept-licence" if not licence_accepted(spec) else ""
    pull = f"`vbench-pref weights pull {shlex.quote(spec.name)}{accept}`"
    where = Path(spec.filename).name
    remedies = []
    if offline_var:
        state = f"is not on disk and cannot be downloaded: offline ({offline_var} is set)"
        tail = f"unset {offline_var} and run {pull}"
    else:
        state = "is not on disk"
        remedies.append(f"run {pull}")
        tail = ""
    if evaluator and option:
        remedies.append(f"pass -O {evaluator}.{option}=/path/to/{where}")
    if spec.env_var:
        remedies.append(f"set {spec.env_var}=/path/to/{where}")
    if tail:
        remedies.append(tail)
    return f"{who}: {spec.filename} ({source}) {state}; " + ", or ".join(remedies)


def resolve(
    spec: WeightSpec,
    local: str | os.PathLike[str] | None = None,
    evaluator: str | None = None,
    option: str | None = None,
) -> ResolvedWeight:
    """The verified weight file, found without network; WeightsMissingError (one line) when absent."""
    path = locate(spec, local)
    if path is None:
        raise WeightsMissingError(missing_message(spec, evaluator, option))
    return verify(spec, path)


# --------------------------------------------------------------------------------------------- pull
def _scheme(source: str) -> str:
    return urllib.parse.urlsplit(source).scheme.lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def pull(spec: WeightSpec, force: bool = False, accept_licence: bool = False) -> ResolvedWeight:
    """Make the file available on disk and verified; downloads only what is missing (or all with ``force``).

    A file already present in a download cache that no longer verifies is downloaded again; a file the
    user supplied (``spec.env_var``) that does not verify is refused. A download of a file with
    ``spec.accept_licence`` is refused (LicenceNotAccepted) until its licence is accepted: by
    ``accept_licence=True`` now (remembered) or by an earlier pull.
    """
    redownload = force
    # a folder's anchor file says nothing about its companions: the hub snapshot fetches what is missing
    if not force and not (spec.companions and not offline_variable()):
        path = locate(spec)
        if path is not None:
            try:
                return verify(spec, path)
            except WeightsMissingError:
                raise
            except VbenchPrefError:
                if not _is_managed(path):
                    raise
                redownload = True
    require_licence(spec, accept_licence)
    # a download that cannot be stored is refused before it starts
    check_output_folder(hf_cache_dir() if spec.is_hf else url_cache_path(spec).parent, "weights cache")
    if spec.is_hf:
        return _pull_hf(spec, redownload)
    scheme = _scheme(spec.source)
    if scheme in {"http", "https", "file"}:
        return _pull_url(spec)
    raise VbenchPrefError(
        f"{spec.name}: cannot download from {spec.source!r}: sources are hf://owner/repo or https://, http://, file:// URLs"
    )


# --------------------------------------------------------------------------------------------- licences
_LICENCES_VERSION = 1


def licences_path() -> Path:
    """Where accepted licences are remembered."""
    return cache_dir() / "licences.json"


def _read_acceptances() -> dict[str, dict[str, Any]]:
    return _read_versioned(licences_path(), _LICENCES_VERSION, "accepted")


def licence_accepted(spec: WeightSpec) -> bool:
    """True when the entry needs no acceptance or its current licence text was accepted before."""
    if not spec.accept_licence:
        return True
    return spec.accept_licence in _read_acceptances().get(spec.name, {})


def record_acceptance(spec: WeightSpec) -> None:
    """Remember that the user accepted ``spec``'s licence (written atomically; a changed licence asks again)."""
    if not spec.accept_licence:
        return
    import datetime

    entries = _read_acceptances()
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    entries.setdefault(spec.name, {})[spec.accept_licence] = stamp
    try:
        atomic_write_text(
            licences_path(), json.dumps({"version": _LICENCES_VERSION, "accepted": entries}, indent=1, sort_keys=True)
        )
    except OSError as exc:
        raise VbenchPrefError(f"cannot record the licence acceptance in {licences_path()}: {_first_line(exc)}") from None


def require_licence(spec: WeightSpec, accept: bool = False) -> None:
    """Refuse (one line) a download of a file whose licence is not accepted; ``accept`` accepts and remembers it."""
    if licence_accepted(spec):
        return
    if accept:
        record_acceptance(spec)
        return
    raise LicenceNotAccepted(
        f"{spec.name}: {spec.filename} is licensed under {spec.accept_licence}; to download it, accept the licence: "
        f"`vbench-pref weights pull {shlex.quote(spec.name)} --accept-licence` (asked once), or place the file yourself"
    )


def _pull_hf(spec: WeightSpec, force: bool) -> ResolvedWeight:
    where = f"{spec.filename} from {spec.source}" + (f"@{spec.revision}" if spec.revision else "")
    variable = offline_variable()
    if variable:
        raise WeightsMissingError(missing_message(spec, offline_var=variable))
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError:
        raise VbenchPrefError(
            f"{spec.name}: downloading {where} needs huggingface_hub (pip install huggingface_hub)"
        ) from None
    try:
        if spec.companions:
            folder = snapshot_download(
                spec.repo_id,
                revision=spec.revision,
                cache_dir=hf_cache_dir(),
                allow_patterns=[spec.filename, *spec.companions],
                force_download=force,
            )
            path = str(Path(folder) / spec.filename)
        else:
            path = hf_hub_download(
                spec.repo_id,
                spec.filename,
                revision=spec.revision,
                cache_dir=hf_cache_dir(),
                force_download=force,
            )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - HTTP, auth, gated repo, network: all one line
        raise VbenchPrefError(f"{spec.name}: cannot download {where}: {_first_line(exc)}") from None
    return verify(spec, Path(path))


def _progress(total: int | None, label: str) -> Any:
    if not total or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=Console(stderr=True), transient=True,
    )
    return progress, progress.add_task(label, total=total)


def _pull_url(spec: WeightSpec) -> ResolvedWeight:
    """The file from ``spec.source``, else from each mirror in turn (mirrors only for a pinned hash)."""
    urls = [spec.source, *(spec.mirrors if spec.sha256 or spec.md5 else ())]
    first: VbenchPrefError | None = None
    for url in urls:
        try:
            return _pull_one_url(spec, url)
        except WeightsMissingError:
            raise
        except VbenchPrefError as exc:
            first = first or exc
    assert first is not None
    if len(urls) > 1:
        raise VbenchPrefError(f"{first} (its {len(urls) - 1} mirror(s) failed too)") from None
    raise first


def _pull_one_url(spec: WeightSpec, url: str) -> ResolvedWeight:
    scheme = _scheme(url)
    variable = offline_variable()
    if variable and scheme != "file":
        raise WeightsMissingError(missing_message(spec, offline_var=variable))
    target = url_cache_path(spec)
    wanted = ("sha256", "md5") if spec.md5 and not spec.sha256 else ("sha256",)
    digests = {name: hashlib.new(name) for name in wanted}
    received = 0
    try:
        with atomic_path(target) as tmp:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as handle:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else spec.size_bytes
                bar = _progress(total, spec.name)
                if bar is not None:
                    bar[0].start()
                try:
                    while block := response.read(1 << 20):
                        handle.write(block)
                        received += len(block)
                        for digest in digests.values():
                            digest.update(block)
                        if bar is not None:
                            bar[0].update(bar[1], completed=received)
                finally:
                    if bar is not None:
                        bar[0].stop()
            if length and length.isdigit() and received != int(length):
                raise VbenchPrefError(
                    f"{spec.name}: download of {url} stopped after {received} of {length} bytes"
                )
            hexes = {name: digest.hexdigest() for name, digest in digests.items()}
            try:
                verified_by = check(spec, target, hexes)
            except VbenchPrefError:
                raise VbenchPrefError(_download_mismatch(spec, hexes, url)) from None
    except VbenchPrefError:
        raise
    except KeyboardInterrupt:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None)
        plain = isinstance(exc, urllib.error.HTTPError) or not reason
        detail = _first_line(exc) if plain else f"{type(exc).__name__}: {reason}"
        raise VbenchPrefError(f"{spec.name}: cannot download {url}: {detail}") from None
    _remember(target, hexes)
    return ResolvedWeight(spec, target, hexes["sha256"], verified_by)


def _download_mismatch(spec: WeightSpec, hexes: dict[str, str], url: str) -> str:
    if spec.sha256:
        got, want, kind = hexes["sha256"], spec.sha256.lower(), "sha256"
    else:
        got, want, kind = hexes.get("md5", ""), (spec.md5 or "").lower(), "md5"
    return (
        f"{spec.name}: the file downloaded from {url} has {kind} {_short(got)}, the manifest expects "
        f"{_short(want)}; it was not kept (the upstream file changed or the download is corrupt)"
    )


# --------------------------------------------------------------------------------------------- manifest
def all_weight_specs() -> dict[str, tuple[WeightSpec, list[str]]]:
    """Every weight entry declared by a registered evaluator's card, by name, with the evaluators using it."""
    from vbench_pref import registry  # lazy: registry -> evaluator -> weights

    found: dict[str, tuple[WeightSpec, list[str]]] = {}
    for evaluator, cls in registry.available().items():
        for spec in getattr(cls, "weights", ()) or ():
            entry = found.setdefault(spec.name, (spec, []))
            if evaluator not in entry[1]:
                entry[1].append(evaluator)
    return found


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover
