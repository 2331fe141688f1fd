"""Tiny real Transformers models and a tokenizer, built from configs in-process (no Hub)."""

from __future__ import annotations

import transformers
from transformers import BertTokenizer

SPECIAL = ["[PAD]", "[unused0]", "[unused1]", "[unused2]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the",
    "a",
    "movie",
    "film",
    "was",
    "is",
    "good",
    "bad",
    "great",
    "awful",
    "fun",
    "dull",
    "plot",
    "acting",
    "i",
    "it",
    "and",
    "not",
    "very",
    "so",
    "love",
    "hate",
    "story",
    "end",
    "##s",
    "##ed",
    "##ing",
    "##ly",
    "best",
    "worst",
    "ever",
    "seen",
    "this",
    "that",
    "of",
    "to",
    "in",
    "but",
    "really",
    "quite",
]
VOCAB = SPECIAL + WORDS  # 48 tokens: ids 0-7 special or reserved, 8-47 real word pieces
VOCAB_SIZE = 64  # the model's embedding table is padded past the tokenizer, as real checkpoints often are
PROTECTED_IDS = set(range(len(SPECIAL)))
CANDIDATE_IDS = list(range(len(SPECIAL), len(VOCAB)))


def tiny_tokenizer(directory) -> BertTokenizer:
    """A real BertTokenizer loaded the way users load one: from a folder holding vocab.txt."""
    (directory / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return BertTokenizer.from_pretrained(str(directory))


def _encoder_kwargs(**extra):
    base = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    return {**base, **extra}


def _t5_config():
    return transformers.T5Config(
        vocab_size=VOCAB_SIZE,
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=6,
        decoder_start_token_id=0,
    )


def _bart_config():
    return transformers.BartConfig(
        vocab_size=VOCAB_SIZE,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=5,
        eos_token_id=6,
        decoder_start_token_id=6,
        forced_eos_token_id=None,
    )


# family -> (model class, config factory)
FAMILIES = {
    "bert": (transformers.BertForSequenceClassification, lambda: transformers.BertConfig(**_encoder_kwargs())),
    "roberta": (
        transformers.RobertaForSequenceClassification,
        lambda: transformers.RobertaConfig(**_encoder_kwargs(max_position_embeddings=80)),
    ),
    "distilbert": (
        transformers.DistilBertForSequenceClassification,
        lambda: transformers.DistilBertConfig(
            vocab_size=VOCAB_SIZE,
            dim=16,
            n_layers=1,
            n_heads=2,
            hidden_dim=32,
            max_position_embeddings=64,
            pad_token_id=0,
        ),
    ),
    "albert": (
        transformers.AlbertForSequenceClassification,
        lambda: transformers.AlbertConfig(**_encoder_kwargs(embedding_size=8)),
    ),
    "electra": (
        transformers.ElectraForSequenceClassification,
        lambda: transformers.ElectraConfig(**_encoder_kwargs(embedding_size=8)),
    ),
    "deberta-v2": (
        transformers.DebertaV2ForSequenceClassification,
        lambda: transformers.DebertaV2Config(**_encoder_kwargs()),
    ),
    "xlm-roberta": (
        transformers.XLMRobertaForSequenceClassification,
        lambda: transformers.XLMRobertaConfig(**_encoder_kwargs(max_position_embeddings=80)),
    ),
    "gpt2": (
        transformers.GPT2LMHeadModel,
        lambda: transformers.GPT2Config(
            vocab_size=VOCAB_SIZE,
            n_embd=16,
            n_layer=1,
            n_head=2,
            n_positions=64,
            bos_token_id=5,
            eos_token_id=6,
            pad_token_id=0,
        ),
    ),
    "llama": (
        transformers.LlamaForCausalLM,
        lambda: transformers.LlamaConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=64,
            pad_token_id=0,
            bos_token_id=5,
            eos_token_id=6,
        ),
    ),
    "t5": (transformers.T5ForConditionalGeneration, _t5_config),
    "bart": (transformers.BartForConditionalGeneration, _bart_config),
}
ENCODER_DECODER = {"t5", "bart"}


def build(family: str):
    """A freshly initialised tiny model of `family`."""
    model_class, make_config = FAMILIES[family]
    return model_class(make_config())


def tiny_bert(num_labels: int = 2, **config_overrides):
    config = transformers.BertConfig(**{**_encoder_kwargs(), "num_labels": num_labels, **config_overrides})
    return transformers.BertForSequenceClassification(config)


def save_tiny_bert(directory) -> str:
    """`tiny_bert()` and `tiny_tokenizer` saved to `directory`, loadable with `from_pretrained` as any checkpoint."""
    directory.mkdir(parents=True, exist_ok=True)
    tiny_tokenizer(directory)
    tiny_bert().save_pretrained(str(directory))
    return str(directory)


def record_lookups(module):
    """Record the ids an embedding module actually looks up (after any pre-hook). Returns (records, hook)."""
    records = []
    hook = module.register_forward_hook(lambda mod, args, output: records.append(args[0].detach().clone()))
    return records, hook


def word_ids(rows: int = 8, cols: int = 12, seed: int = 0):
    """A batch shaped like tokenizer output: [CLS] words [SEP] and trailing [PAD]."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(CANDIDATE_IDS[0], CANDIDATE_IDS[-1] + 1, (rows, cols), generator=generator)
    ids[:, 0] = 5
    ids[:, -3] = 6
    ids[:, -2:] = 0
    return ids


def tiny_sentence_transformer(directory):
    """A real SentenceTransformer (tiny BertModel + mean pooling) built in-process from a saved folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models

    directory.mkdir(parents=True, exist_ok=True)
    tiny_tokenizer(directory)
    transformers.BertModel(transformers.BertConfig(**_encoder_kwargs())).save_pretrained(str(directory))
    transformer = models.Transformer(str(directory), max_seq_length=32)
    pooling = models.Pooling(transformer.get_embedding_dimension())
    return SentenceTransformer(modules=[transformer, pooling], device="cpu")
