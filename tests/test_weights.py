"""Weight manifests: locating, verifying and pulling weight files, offline and without network."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vbench_pref import weights
from vbench_pref.errors import VbenchPrefError, WeightsMissingError
from vbench_pref.evaluator import Evaluator, ScoreSpec
from vbench_pref.video import FrameSpec
from vbench_pref.weights import ResolvedWeight, WeightSpec

CONTENT = b"pretend checkpoint \x00\x01\x02" * 100


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every cache under tmp_path; online unless a test says otherwise."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("VBENCH_PREF_CACHE", str(tmp_path / "vbench_cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("VBENCH_PREF_OFFLINE", raising=False)
    return tmp_path


@pytest.fixture
def source_file(tmp_path: Path) -> Path:
    path = tmp_path / "upstream" / "model.pt"
    path.parent.mkdir()
    path.write_bytes(CONTENT)
    return path


def url_spec(path: Path, **changes) -> WeightSpec:
    fields = {"name": "tiny", "source": path.as_uri(), "filename": "model.pt", "sha256": sha(CONTENT)}
    return WeightSpec(**{**fields, "licence": "MIT", **changes})


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


# --------------------------------------------------------------------------------------------- spec
def test_spec_keeps_positional_fields_and_describes_new_ones() -> None:
    spec = WeightSpec("n", "hf://o/r", "f.pt", "abcd", "MIT", 12, "v1", "ENV", md5="00", description="d")
    assert (spec.size_bytes, spec.revision, spec.env_var) == (12, "v1", "ENV")
    described = spec.describe()
    assert described["md5"] == "00" and described["description"] == "d" and described["sha256"] == "abcd"
    assert spec.repo_id == "o/r" and spec.pinning == "sha256 pinned"
    assert WeightSpec("n", "hf://o/r", "f", None, "MIT").pinning == "hub sha256"
    assert WeightSpec("n", "https://x/f", "f", None, "MIT", md5="ab").pinning == "md5"
    assert WeightSpec("n", "https://x/f", "f", None, "MIT").pinning == "none"


def test_cache_locations_follow_the_environment(monkeypatch, tmp_path) -> None:
    assert weights.hf_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert weights.hf_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert weights.hf_cache_dir() == tmp_path / "user" / ".cache" / "huggingface" / "hub"
    assert weights.cache_dir() == tmp_path / "vbench_cache"
    monkeypatch.delenv("VBENCH_PREF_CACHE")
    assert weights.cache_dir() == tmp_path / "user" / ".cache" / "vbench_pref"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_dir() == tmp_path / "xdg" / "vbench_pref"
    assert not weights.offline()
    monkeypatch.setenv("VBENCH_PREF_OFFLINE", "1")
    assert weights.offline_variable() == "VBENCH_PREF_OFFLINE"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert weights.offline_variable() == "VBENCH_PREF_OFFLINE"
    monkeypatch.setenv("HF_HUB_OFFLINE", "true")
    assert weights.offline_variable() == "HF_HUB_OFFLINE"


# --------------------------------------------------------------------------------------------- URL sources
def test_pull_file_url_downloads_verifies_and_is_found_offline(source_file, monkeypatch) -> None:
    spec = url_spec(source_file)
    assert weights.locate(spec) is None
    resolved = weights.pull(spec)
    target = weights.cache_dir() / "weights" / "tiny" / "model.pt"
    assert resolved.path == target and target.read_bytes() == CONTENT
    assert resolved.sha256 == sha(CONTENT) and resolved.verified_by == "manifest sha256"
    assert [p.name for p in target.parent.iterdir()] == ["model.pt"]  # no temporary file left

    calls = []
    real_urlopen = weights.urllib.request.urlopen
    monkeypatch.setattr(weights.urllib.request, "urlopen", lambda *a, **k: calls.append(a) or real_urlopen(*a, **k))
    again = weights.pull(spec)
    assert calls == [] and again.path == target and again.sha256 == resolved.sha256

    source_file.unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = weights.resolve(spec)
    assert found.path == target and found.verified_by == "manifest sha256"
    prov = found.provenance()
    assert prov == {
        "name": "tiny",
        "file": str(target),
        "sha256": sha(CONTENT),
        "verified_by": "manifest sha256",
        "source": spec.source,
        "revision": None,
        "licence": "MIT",
    }


def test_force_pull_downloads_again(source_file, monkeypatch) -> None:
    spec = url_spec(source_file)
    weights.pull(spec)
    calls = []
    real_urlopen = weights.urllib.request.urlopen
    monkeypatch.setattr(weights.urllib.request, "urlopen", lambda *a, **k: calls.append(a) or real_urlopen(*a, **k))
    weights.pull(spec, force=True)
    assert len(calls) == 1


def test_mismatching_download_is_refused_and_not_kept(source_file) -> None:
    spec = url_spec(source_file, sha256=sha(b"something else"))
    with pytest.raises(VbenchPrefError) as exc:
        weights.pull(spec)
    message = one_line(exc)
    assert "tiny" in message and "sha256" in message and "not kept" in message
    target = weights.url_cache_path(spec)
    assert not target.exists()
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_cached_file_corrupted_later_is_refused_and_pull_replaces_it(source_file) -> None:
    spec = url_spec(source_file)
    target = weights.pull(spec).path
    target.write_bytes(b"corrupted")
    with pytest.raises(VbenchPrefError) as exc:
        weights.resolve(spec)
    message = one_line(exc)
    assert "the manifest expects" in message and "weights pull tiny" in message
    assert weights.pull(spec).path.read_bytes() == CONTENT  # a corrupt cached copy is fetched again


def test_unreachable_url_is_one_line_and_leaves_nothing(tmp_path) -> None:
    spec = url_spec(tmp_path / "nowhere" / "model.pt")
    with pytest.raises(VbenchPrefError) as exc:
        weights.pull(spec)
    assert "cannot download" in one_line(exc)
    assert not weights.url_cache_path(spec).exists()


def test_offline_refuses_http_but_not_file_urls(source_file, monkeypatch) -> None:
    monkeypatch.setenv("VBENCH_PREF_OFFLINE", "1")
    spec = url_spec(source_file, source="https://example.invalid/model.pt", env_var="TINY_WEIGHTS")
    real_urlopen = weights.urllib.request.urlopen

    def urlopen(url, *args, **kwargs):
        assert url.startswith("file:"), "network used offline"
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(weights.urllib.request, "urlopen", urlopen)
    with pytest.raises(WeightsMissingError) as exc:
        weights.pull(spec)
    message = one_line(exc)
    assert "offline (VBENCH_PREF_OFFLINE is set)" in message and "model.pt" in message
    assert "TINY_WEIGHTS" in message
    assert weights.pull(url_spec(source_file)).verified_by == "manifest sha256"  # file:// needs no network


def test_prefix_and_uppercase_sha256_are_accepted(source_file) -> None:
    assert weights.pull(url_spec(source_file, sha256=sha(CONTENT)[:8])).verified_by == "manifest sha256"
    assert weights.verify(url_spec(source_file, sha256=sha(CONTENT)[:10].upper()), source_file).sha256 == sha(CONTENT)
    with pytest.raises(VbenchPrefError):
        weights.verify(url_spec(source_file, sha256="0123abcd"), source_file)


def test_md5_only_spec_is_checked(source_file) -> None:
    md5 = hashlib.md5(CONTENT).hexdigest()
    spec = url_spec(source_file, sha256=None, md5=md5)
    resolved = weights.pull(spec)
    assert resolved.verified_by == "md5" and resolved.sha256 == sha(CONTENT)
    assert weights.verify(spec, source_file).verified_by == "md5"
    bad = url_spec(source_file, name="tiny_bad", sha256=None, md5="0" * 32)
    with pytest.raises(VbenchPrefError) as exc:
        weights.verify(bad, source_file)
    assert "md5" in one_line(exc)
    with pytest.raises(VbenchPrefError):
        weights.pull(bad)
    assert not weights.url_cache_path(bad).exists()


def test_unpinned_file_is_unverified(source_file) -> None:
    spec = url_spec(source_file, sha256=None)
    resolved = weights.pull(spec)
    assert resolved.verified_by == "unverified" and resolved.sha256 == sha(CONTENT)


# --------------------------------------------------------------------------------------------- HF cache
def make_hf_cache(hub: Path, repo_id: str, filename: str, content: bytes, blob_name: str | None = None) -> Path:
    """A cache laid out as huggingface_hub writes it; returns the snapshot path (a symlink to the blob)."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    blob = blob_name or sha(content)
    (repo / "blobs").mkdir()
    (repo / "blobs" / blob).write_bytes(content)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / filename).symlink_to(Path("..") / ".." / "blobs" / blob)
    return snapshot / filename


def test_hf_cache_is_found_offline_and_verified_by_blob_name(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = make_hf_cache(weights.hf_cache_dir(), "owner/repo", "model.safetensors", CONTENT)
    from huggingface_hub import try_to_load_from_cache

    assert try_to_load_from_cache("owner/repo", "model.safetensors", cache_dir=weights.hf_cache_dir()) == str(snapshot)
    assert weights._try_to_load_from_cache("owner/repo", "model.safetensors", weights.hf_cache_dir(), None) == snapshot

    spec = WeightSpec("hub_model", "hf://owner/repo", "model.safetensors", None, "Apache-2.0")
    assert weights.locate(spec) == snapshot
    resolved = weights.resolve(spec)
    assert resolved.verified_by == "hub sha256" and resolved.sha256 == sha(CONTENT)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda *a, **k: pytest.fail("downloaded"))
    assert weights.pull(spec).path == snapshot  # present: no download even though offline

    pinned = WeightSpec("hub_pinned", "hf://owner/repo", "model.safetensors", sha(CONTENT)[:16], "Apache-2.0")
    assert weights.resolve(pinned).verified_by == "manifest sha256"
    other_revision = WeightSpec("hub_rev", "hf://owner/repo", "model.safetensors", None, "MIT", revision="v2")
    assert weights.locate(other_revision) is None


def test_hf_blob_not_matching_its_name_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make_hf_cache(weights.hf_cache_dir(), "owner/repo", "model.bin", CONTENT, blob_name=sha(b"the real file"))
    spec = WeightSpec("hub_model", "hf://owner/repo", "model.bin", None, "MIT")
    with pytest.raises(VbenchPrefError) as exc:
        weights.resolve(spec)
    message = one_line(exc)
    assert "blob" in message and "weights pull hub_model" in message


def test_offline_hf_pull_of_an_uncached_file_is_one_line(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda *a, **k: pytest.fail("downloaded offline"))
    spec = WeightSpec("hpsv2.0", "hf://xswu/HPSv2", "HPS_v2_compressed.pt", None, "Apache-2.0")
    with pytest.raises(WeightsMissingError) as exc:
        weights.pull(spec)
    message = one_line(exc)
    assert "HPS_v2_compressed.pt" in message and "offline (HF_HUB_OFFLINE is set)" in message


def test_hf_download_errors_become_one_line(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise OSError("connection refused\nmore detail\neven more")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fail)
    spec = WeightSpec("hub_model", "hf://owner/repo", "model.bin", None, "MIT", revision="v1")
    with pytest.raises(VbenchPrefError) as exc:
        weights.pull(spec)
    message = one_line(exc)
    assert "hf://owner/repo" in message and "model.bin" in message and "connection refused" in message


def test_hf_pull_goes_through_hf_hub_download(monkeypatch) -> None:
    seen = {}

    def download(repo_id, filename, **kwargs):
        seen.update(repo_id=repo_id, filename=filename, **kwargs)
        return str(make_hf_cache(Path(kwargs["cache_dir"]), repo_id, filename, CONTENT))

    monkeypatch.setattr("huggingface_hub.hf_hub_download", download)
    spec = WeightSpec("hub_model", "hf://owner/repo", "model.bin", None, "MIT")
    resolved = weights.pull(spec)
    assert resolved.verified_by == "hub sha256"
    assert seen["repo_id"] == "owner/repo" and seen["filename"] == "model.bin"
    assert Path(seen["cache_dir"]) == weights.hf_cache_dir() and seen["revision"] is None


def test_a_folder_spec_is_pulled_as_one_snapshot_of_its_files(monkeypatch) -> None:
    seen = {}

    def snapshot(repo_id, **kwargs):
        seen.update(repo_id=repo_id, **kwargs)
        repo = Path(kwargs["cache_dir"]) / ("models--" + repo_id.replace("/", "--"))
        if not repo.exists():
            make_hf_cache(Path(kwargs["cache_dir"]), repo_id, "model.safetensors.index.json", CONTENT)
        return str(next((repo / "snapshots").iterdir()))

    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda *a, **k: pytest.fail("one file only"))
    spec = WeightSpec("folder_model", "hf://owner/repo", "model.safetensors.index.json", None, "MIT",
                      companions=("*.safetensors", "*.json"))
    assert weights.pull(spec).path.name == "model.safetensors.index.json"
    assert seen["allow_patterns"] == ["model.safetensors.index.json", "*.safetensors", "*.json"]
    # present already: pulled again all the same, as a shard may be what is missing (the hub skips the rest)
    seen.clear()
    weights.pull(spec)
    assert seen["repo_id"] == "owner/repo"
    assert spec.describe()["companions"] == ["*.safetensors", "*.json"]


def test_missing_message_names_pull_option_and_env_var() -> None:
    spec = WeightSpec(
        "hpsv2.0", "hf://xswu/HPSv2", "HPS_v2_compressed.pt", None, "Apache-2.0", env_var="VBENCH_PREF_HPSV2_WEIGHTS"
    )
    with pytest.raises(WeightsMissingError) as exc:
        weights.resolve(spec, evaluator="hpsv2", option="weights")
    assert one_line(exc) == (
        "hpsv2: HPS_v2_compressed.pt (hf://xswu/HPSv2) is not on disk; run `vbench-pref weights pull hpsv2.0`, "
        "or pass -O hpsv2.weights=/path/to/HPS_v2_compressed.pt, "
        "or set VBENCH_PREF_HPSV2_WEIGHTS=/path/to/HPS_v2_compressed.pt"
    )
    plain = WeightSpec("x", "hf://o/r", "f.pt", None, "MIT")
    assert weights.missing_message(plain) == "x: f.pt (hf://o/r) is not on disk; run `vbench-pref weights pull x`"


# --------------------------------------------------------------------------------------------- local files
def test_local_file_folder_and_env_var(tmp_path, source_file, monkeypatch) -> None:
    spec = url_spec(source_file, env_var="TINY_WEIGHTS")
    assert weights.locate(spec, str(source_file)) == source_file
    assert weights.locate(spec, source_file.parent) == source_file
    assert weights.resolve(spec, str(source_file.parent)).verified_by == "manifest sha256"
    monkeypatch.setenv("TINY_WEIGHTS", str(source_file))
    assert weights.locate(spec) == source_file
    monkeypatch.setenv("TINY_WEIGHTS", str(source_file.parent))
    assert weights.resolve(spec).path == source_file

    for given in (tmp_path / "nope.pt", tmp_path):  # missing path, folder without the file
        with pytest.raises(WeightsMissingError) as exc:
            weights.locate(spec, str(given))
        assert str(given) in one_line(exc)
    monkeypatch.setenv("TINY_WEIGHTS", str(tmp_path / "nope.pt"))
    with pytest.raises(WeightsMissingError) as exc:
        weights.resolve(spec)
    assert "TINY_WEIGHTS" in one_line(exc)


def test_user_file_with_wrong_hash_is_refused(tmp_path, source_file) -> None:
    wrong = tmp_path / "wrong.pt"
    wrong.write_bytes(b"another model")
    with pytest.raises(VbenchPrefError) as exc:
        weights.resolve(url_spec(source_file), str(wrong))
    message = one_line(exc)
    assert str(wrong) in message and "the manifest expects" in message


def test_verify_sha256_accepts_the_prefix_flow_uses(source_file) -> None:
    assert weights.verify_sha256(source_file, sha(CONTENT)[:8]) == weights.sha256_file(source_file) == sha(CONTENT)


# --------------------------------------------------------------------------------------------- memo
def test_verified_digests_are_memoised(source_file, monkeypatch) -> None:
    calls = []
    real = weights.hash_file
    monkeypatch.setattr(weights, "hash_file", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    spec = url_spec(source_file)
    weights.verify(spec, source_file)
    weights.verify(spec, source_file)
    assert len(calls) == 1
    memo = json.loads((weights.cache_dir() / "verified.json").read_text())
    assert memo["files"][str(source_file.resolve())]["sha256"] == sha(CONTENT)

    stat = source_file.stat()
    os.utime(source_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    weights.verify(spec, source_file)
    assert len(calls) == 2
    with open(source_file, "ab") as handle:  # size changes: rehashed, and refused
        handle.write(b"x")
    os.utime(source_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(VbenchPrefError):
        weights.verify(spec, source_file)
    assert len(calls) == 3


def test_corrupt_memo_is_ignored(source_file) -> None:
    memo = weights.cache_dir() / "verified.json"
    memo.parent.mkdir(parents=True)
    memo.write_text("{not json")
    assert weights.verify(url_spec(source_file), source_file).sha256 == sha(CONTENT)
    assert json.loads(memo.read_text())["version"] == 1


def test_downloaded_file_is_memoised(source_file, monkeypatch) -> None:
    spec = url_spec(source_file)
    weights.pull(spec)
    monkeypatch.setattr(weights, "hash_file", lambda *a, **k: pytest.fail("rehashed a fresh download"))
    assert isinstance(weights.resolve(spec), ResolvedWeight)


# --------------------------------------------------------------------------------------------- manifest + CLI
def weights_evaluator(source: Path, **changes) -> type[Evaluator]:
    spec = url_spec(source, **{"name": "tiny_cli_weights", "filename": "tiny.pt", "size_bytes": len(CONTENT), **changes})

    class UsesWeights(Evaluator):
        name = "uses_weights_test"
        version = "1"
        scores = (ScoreSpec("value", True),)
        frames = FrameSpec()
        weights = (spec,)

        def score(self, batch):  # pragma: no cover - never scored here
            raise AssertionError

    return UsesWeights


def test_all_weight_specs_includes_registered_evaluators(register, source_file) -> None:
    cls = weights_evaluator(source_file)
    register(cls)
    spec, users = weights.all_weight_specs()["tiny_cli_weights"]
    assert spec is cls.weights[0] and users == ["uses_weights_test"]


def test_cli_list_pull_verify(register, source_file) -> None:
    from vbench_pref.cli import app

    register(weights_evaluator(source_file))
    runner = CliRunner()

    listed = runner.invoke(app, ["weights", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    row = rows["tiny_cli_weights"]
    assert row["evaluators"] == ["uses_weights_test"] and row["status"] == "missing"
    assert row["pinning"] == "sha256 pinned" and row["size"] == "2.2 KB" and row["filename"] == "tiny.pt"

    pulled = runner.invoke(app, ["weights", "pull", "uses_weights_test"])
    assert pulled.exit_code == 0, pulled.output
    target = weights.cache_dir() / "weights" / "tiny_cli_weights" / "tiny.pt"
    assert target.read_bytes() == CONTENT
    assert sha(CONTENT) in pulled.stdout and "manifest sha256" in pulled.stdout

    listed = runner.invoke(app, ["weights", "list", "--json"])
    row = {r["name"]: r for r in json.loads(listed.stdout)}["tiny_cli_weights"]
    assert row["status"] == "present" and row["path"] == str(target)
    table = runner.invoke(app, ["weights", "list"])
    assert table.exit_code == 0 and "present" in table.stdout

    verified = runner.invoke(app, ["weights", "verify", "tiny_cli_weights"])
    assert verified.exit_code == 0, verified.output
    assert "OK" in verified.stdout and "MISMATCH" not in verified.stdout

    target.write_bytes(b"corrupted checkpoint")
    verified = runner.invoke(app, ["weights", "verify"])
    assert verified.exit_code == 2
    assert "MISMATCH" in verified.stdout and "tiny_cli_weights" in verified.stdout


def test_cli_unknown_name_and_missing_names(register, source_file) -> None:
    from vbench_pref.cli import app

    register(weights_evaluator(source_file))
    runner = CliRunner()
    result = runner.invoke(app, ["weights", "pull", "uses_weights_tst"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Did you mean uses_weights_test" in lines[0]
    assert runner.invoke(app, ["weights", "pull"]).exit_code == 2


def test_cli_pull_failure_exits_2(register, tmp_path) -> None:
    from vbench_pref.cli import app

    register(weights_evaluator(tmp_path / "absent.pt"))
    result = CliRunner().invoke(app, ["weights", "pull", "tiny_cli_weights"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot download" in lines[0]


# --------------------------------------------------------------------------------------------- licences
NC = "Some Lab Licence 1.0 (non-commercial), https://example.org/LICENSE"


def test_non_commercial_download_needs_acceptance_once(source_file) -> None:
    spec = url_spec(source_file, licence="Some Lab Licence 1.0 (non-commercial)", accept_licence=NC)
    assert spec.describe()["accept_licence"] == NC
    with pytest.raises(weights.LicenceNotAccepted) as exc:
        weights.pull(spec)
    assert "--accept-licence" in one_line(exc) and NC in str(exc.value)
    assert weights.locate(spec) is None and not weights.licences_path().exists()

    resolved = weights.pull(spec, accept_licence=True)
    assert resolved.path.read_bytes() == CONTENT
    accepted = json.loads(weights.licences_path().read_text())["accepted"]
    assert list(accepted) == [spec.name] and list(accepted[spec.name]) == [NC]
    assert weights.licence_accepted(spec)
    # remembered: a later download (forced here) needs no flag
    assert weights.pull(spec, force=True).sha256 == sha(CONTENT)
    # a changed licence is a new question
    changed = url_spec(source_file, accept_licence=NC + " v2")
    assert not weights.licence_accepted(changed)
    with pytest.raises(weights.LicenceNotAccepted):
        weights.pull(changed, force=True)


def test_present_files_need_no_acceptance(source_file, monkeypatch) -> None:
    spec = url_spec(source_file, accept_licence=NC, env_var="TINY_NC_WEIGHTS")
    assert weights.resolve(spec, local=source_file).path == source_file
    monkeypatch.setenv("TINY_NC_WEIGHTS", str(source_file))
    assert weights.pull(spec).path == source_file  # found, not downloaded: nothing to accept
    assert not weights.licences_path().exists()


def test_mirrors_are_tried_in_order_for_pinned_files(tmp_path, source_file) -> None:
    missing = (tmp_path / "gone" / "model.pt").as_uri()
    wrong = tmp_path / "wrong.pt"
    wrong.write_bytes(b"another file")
    spec = url_spec(tmp_path / "gone" / "model.pt", mirrors=(wrong.as_uri(), source_file.as_uri()))
    assert spec.describe()["mirrors"] == [wrong.as_uri(), source_file.as_uri()]
    assert weights.pull(spec).path.read_bytes() == CONTENT
    # without a pinned hash a mirror could hand over anything: only the source is used
    unpinned = url_spec(tmp_path / "gone" / "model.pt", name="unpinned", sha256=None, mirrors=(source_file.as_uri(),))
    with pytest.raises(VbenchPrefError) as exc:
        weights.pull(unpinned)
    assert missing in one_line(exc) and "failed too" not in str(exc.value)
    every_mirror_fails = url_spec(tmp_path / "gone" / "model.pt", name="nowhere", mirrors=(wrong.as_uri(),))
    with pytest.raises(VbenchPrefError) as exc:
        weights.pull(every_mirror_fails)
    assert missing in one_line(exc) and "1 mirror(s) failed too" in str(exc.value)


def test_cli_pull_asks_for_the_licence_once(register, source_file, monkeypatch) -> None:
    from vbench_pref.cli import _app, app

    monkeypatch.setattr(_app.out, "width", 250)  # one table row per line, nothing folded

    register(weights_evaluator(source_file, licence="Some Lab Licence 1.0 (non-commercial)", accept_licence=NC))
    runner = CliRunner()
    table = runner.invoke(app, ["weights", "list"])
    assert table.exit_code == 0 and "non-commercial" in table.stdout and "--accept-licence" in table.stdout
    row = {r["name"]: r for r in json.loads(runner.invoke(app, ["weights", "list", "--json"]).stdout)}["tiny_cli_weights"]
    assert row["accept_licence"] == NC and row["licence_accepted"] is False

    refused = runner.invoke(app, ["weights", "pull", "tiny_cli_weights"])
    assert refused.exit_code == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--accept-licence" in lines[0], refused.stderr
    assert not (weights.cache_dir() / "weights" / "tiny_cli_weights" / "tiny.pt").exists()

    accepted = runner.invoke(app, ["weights", "pull", "tiny_cli_weights", "--accept-licence"])
    assert accepted.exit_code == 0, accepted.output
    again = runner.invoke(app, ["weights", "pull", "uses_weights_test", "--force"])
    assert again.exit_code == 0, again.output
    row = {r["name"]: r for r in json.loads(runner.invoke(app, ["weights", "list", "--json"]).stdout)}["tiny_cli_weights"]
    assert row["licence_accepted"] is True and row["status"] == "present"
    assert "accepted" in runner.invoke(app, ["weights", "list"]).stdout


def test_vqa_manifest_entries() -> None:
    from vbench_pref.vqa import weights as vqa_weights

    entries = {spec.filename: spec for spec in vqa_weights.ALL_WEIGHTS}
    assert set(entries) == {"DOVER.pth", "DOVER-Mobile.pth", "DOVER_plus_plus.pth", "FAST_VQA_B_1_4.pth", "FAST_VQA_3D_1_1.pth"}
    assert len({spec.name for spec in entries.values()}) == len(entries)
    for name in ("DOVER.pth", "DOVER-Mobile.pth", "DOVER_plus_plus.pth"):
        assert "non-commercial" in entries[name].licence and entries[name].accept_licence
    for name in ("FAST_VQA_B_1_4.pth", "FAST_VQA_3D_1_1.pth"):
        assert entries[name].licence.startswith("MIT") and entries[name].accept_licence is None
    dover = entries["DOVER.pth"]
    assert len(dover.sha256) == 64 and dover.mirrors and dover.pinning == "sha256 pinned"
    assert entries["DOVER_plus_plus.pth"].pinning == "hub sha256"
