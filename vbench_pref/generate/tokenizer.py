"""A byte-level tokenizer that needs no vocabulary file, for the built-in tiny models.

Real checkpoints ship their own tokenizers; the built-in tiny pipelines are made offline, so they use
256 byte tokens plus T5-style ``<pad>``/``</s>``/``<unk>``: every text tokenizes, nothing is downloaded,
and the result saves and loads as an ordinary ``tokenizer.json``.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


def byte_level_tokenizer(model_max_length: int) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.pre_tokenizers import ByteLevel

    specials = [PAD, EOS, UNK]
    vocab = {token: i for i, token in enumerate(specials + sorted(ByteLevel.alphabet()))}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=model_max_length
    )
