"""VideoScore2: visual quality, text-to-video alignment and physical/common-sense consistency, each 1-5.

TIGER-Lab/VideoScore2 is Qwen2.5-VL-7B-Instruct fine-tuned (SFT, then GRPO) to write a rationale and three
integer ratings; each rating is softened by the probabilities of the tokens "1".."5" where it was written
(``best * max p / sum p``), as TIGER-AI-Lab/VideoScore2's ``vs2_inference.py`` does. Loaded with plain
transformers (``Qwen2_5_VLForConditionalGeneration``, safetensors, no remote code); see
``vbench_pref.vlm.videoscore2`` for the frame rule, the prompt, the decoding and how the soft scores are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vbench_pref import weights as weight_files
from vbench_pref.errors import ScoreError, VbenchPrefError, WeightsMissingError
from vbench_pref.evaluator import Evaluator, Option, ScoreSpec, SharedModels, VideoSample
from vbench_pref.openclip import PRECISIONS
from vbench_pref.video import FrameSpec
from vbench_pref.vlm.videoscore2 import DIMENSIONS, REFERENCE_MAX_NEW_TOKENS, VIDEOSCORE2_RULE, Verdict, missing_files

VIDEOSCORE2_WEIGHTS = weight_files.WeightSpec(
    name="videoscore2",
    source="hf://TIGER-Lab/VideoScore2",
    filename="model.safetensors.index.json",
    sha256=None,  # the shards are checked against the hub's LFS sha256 in the Hugging Face cache
    licence="Apache-2.0 (TIGER-Lab/VideoScore2 model card)",
    env_var="VBENCH_PREF_VIDEOSCORE2",
    description="VideoScore2 (Qwen2.5-VL-7B-Instruct architecture): this index, the safetensors shards it names, "
    "config, generation/preprocessor configs and tokenizer, all in one folder",
    # the folder, never pickles or code: safetensors, JSON configs, the tokenizer's text files
    companions=("*.safetensors", "*.json", "merges.txt", "vocab.json", "*.jinja"),
)
PULL = "vbench-pref weights pull videoscore2"


class VideoScore2Evaluator(Evaluator):
    name = "videoscore2"
    version = "1"
    description = "VideoScore2 (Qwen2.5-VL-7B): visual quality, text alignment, physical consistency, 1-5 soft scores"
    scores = (
        ScoreSpec("visual_quality", True, (1.0, 5.0), "clarity, smoothness, artifacts (1-5, softened)"),
        ScoreSpec("text_alignment", True, (1.0, 5.0), "fidelity to the prompt (1-5, softened)"),
        ScoreSpec("physical_consistency", True, (1.0, 5.0), "physics and common-sense plausibility (1-5, softened)"),
    )
    frames = FrameSpec(sampling="qwen", resize="qwen", qwen=VIDEOSCORE2_RULE, pixels="uint8")
    needs_prompt = True
    weights = (VIDEOSCORE2_WEIGHTS,)
    reference = "TIGER-AI-Lab/VideoScore2:vs2_inference.py@e6abe26 (transformers 4.53.2, qwen-vl-utils)"
    options = (
        Option("weights", "official",
               "'official' (the TIGER-Lab/VideoScore2 folder in the Hugging Face cache), a local folder in that layout, "
               "or 'random' (untrained weights with the answer format wired in, smoke tests only; scores are labelled)"),
        Option("random_size", "tiny", "with weights=random: tiny (test size) or full (the published architecture)",
               ("tiny", "full")),
        Option("precision", "run",
               "run: the run's --dtype; reference: float32, as vs2_inference.py loads the model; float32: always float32",
               PRECISIONS),
        Option("decoding", "greedy",
               "greedy (deterministic: the most likely token under the reference's processors) or sample (the "
               "reference's temperature-0.7 sampling, seeded per video from --seed)", ("greedy", "sample")),
        Option("softening", "reference",
               "where the 1-5 probabilities come from: reference (the reference's sampler distribution: repetition "
               "penalty, temperature 0.7, the checkpoint's top-k/top-p) or logits (the model's raw softmax)",
               ("reference", "logits")),
        Option("max_new_tokens", REFERENCE_MAX_NEW_TOKENS, "tokens the model may write per video (the reference's 1024)"),
        Option("batch_tokens", 32768, "token budget of one generation pass: videos are grouped while their count "
               "x the largest one's visual tokens stays within it"),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for key in ("max_new_tokens", "batch_tokens"):
            if int(self.config[key]) < 1:
                raise VbenchPrefError(f"{self.name}: {key} must be at least 1")
        self.scorer: Any = None
        self._weights: list[dict[str, Any]] = []
        # verdicts of a batch that had a failing video: the engine then asks for each video alone, and these
        # answer without generating again (cleared at the end of each chunk)
        self._held: dict[str, Verdict] = {}

    # --- weights
    @property
    def uses_random_weights(self) -> bool:
        return self.config["weights"] == "random"

    def required_weights(self) -> tuple[weight_files.WeightSpec, ...]:
        return self.weights if self.config["weights"] == "official" else ()

    def _folder(self) -> Path:
        """The model folder the ``weights`` option names; WeightsMissingError (one line) when incomplete."""
        value = str(self.config["weights"])
        if value == "official":
            try:
                index = weight_files.locate(VIDEOSCORE2_WEIGHTS)
            except WeightsMissingError as exc:
                raise WeightsMissingError(f"{exc}; or run `{PULL}`") from None
            if index is None:
                raise WeightsMissingError(
                    f"{self.name}: the VideoScore2 model folder ({VIDEOSCORE2_WEIGHTS.source}, ~17 GB) is not in the "
                    f"Hugging Face cache; run `{PULL}`, or pass -O {self.name}.weights=/path/to/folder"
                )
            folder = index.parent
        else:
            folder = Path(value).expanduser()
            if folder.is_file():
                folder = folder.parent
            if not folder.is_dir():
                raise WeightsMissingError(f"{self.name}: model folder {folder} does not exist")
        lacking = missing_files(folder)
        if lacking:
            more = f" and {len(lacking) - 3} more" if len(lacking) > 3 else ""
            raise WeightsMissingError(f"{self.name}: {folder} lacks {', '.join(lacking[:3])}{more}; run `{PULL}` "
                                      "or complete the folder")
        return folder

    def missing_weights(self) -> str | None:
        if self.uses_random_weights:
            return None
        try:
            self._folder()
        except VbenchPrefError as exc:
            return str(exc)
        return None

    def _record(self, folder: Path) -> None:
        """Hash every weight file (memoised), against the hub's blob names when in the Hugging Face cache."""
        self._weights = []
        index = folder / "model.safetensors.index.json"
        files = [index, *sorted({folder / s for s in weight_files_in(index)})] if index.is_file() else [folder / "model.safetensors"]
        for path in files:
            spec = weight_files.WeightSpec(name=f"videoscore2/{path.name}", source=VIDEOSCORE2_WEIGHTS.source,
                                           filename=path.name, sha256=None, licence=VIDEOSCORE2_WEIGHTS.licence)
            self._weights.append({"option": "weights", **weight_files.verify(spec, path).provenance()})

    # --- lifecycle
    def _dtype(self) -> torch.dtype:
        return self.dtype if self.config["precision"] == "run" else torch.float32

    def load(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
             shared: SharedModels | None = None) -> None:
        super().load(device, dtype, shared)
        from vbench_pref.vlm.videoscore2 import VideoScore2

        if self.uses_random_weights:
            from vbench_pref.vlm.videoscore2_checkpoint import random_videoscore2

            self.scorer = random_videoscore2(str(self.config["random_size"]), seed=0, dtype=self._dtype())
            self._weights = [{"option": "weights", "weights": "random", "size": self.config["random_size"]}]
            return
        folder = self._folder()
        self.scorer = VideoScore2.load(folder, self._dtype())
        self._record(folder)

    def residency_key(self) -> str:
        return f"{self.name}:{self.config['weights']}:{self.config['random_size']}:{self.config['precision']}"

    def device_models(self) -> tuple[Any, ...]:
        return (self.scorer,)

    def chunk_done(self) -> None:
        self._held.clear()

    # --- scoring
    def score(self, batch: Sequence[VideoSample]) -> dict[str, np.ndarray]:
        if self.scorer is None:
            raise RuntimeError(f"{self.name}: call load() before score()")
        missing = [s.video for s in batch if not s.prompt]
        if missing:
            raise ScoreError(f"{self.name} needs a prompt; {missing[0]} has none")
        todo = [s for s in batch if s.video not in self._held]
        if todo:
            verdicts = self.scorer.score(
                [s.frames for s in todo], [str(s.prompt) for s in todo], VIDEOSCORE2_RULE.fps,
                decoding=str(self.config["decoding"]), seeds=[int(s.extras.get("seed", 0)) for s in todo],
                max_new_tokens=int(self.config["max_new_tokens"]), token_budget=int(self.config["batch_tokens"]),
                softening=str(self.config["softening"]),
            )
            self._held.update({s.video: v for s, v in zip(todo, verdicts)})
        verdicts = [self._held[s.video] for s in batch]
        failed = [(s, v) for s, v in zip(batch, verdicts) if v.error is not None]
        if failed:
            raise ScoreError(f"{self.name}: {failed[0][1].error}")
        for sample in batch:
            self._held.pop(sample.video, None)
        return {name: np.array([v.scores[name] for v in verdicts]) for name, _ in DIMENSIONS}

    # --- provenance
    def weight_provenance(self) -> list[dict[str, Any]]:
        return list(self._weights)

    def provenance(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"dtype": str(self._dtype()).removeprefix("torch.")}
        if self.scorer is not None:
            extra["sampling"] = self.scorer.sampling.describe()
        return {**super().provenance(), **extra}


def weight_files_in(index: Path) -> list[str]:
    """Shard names an index lists (``missing_files`` has already refused any that leave the folder)."""
    import json

    return sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
