"""The DiT policy with a frozen pretrained text model (``DiTConfig.text_model``): a tiny BERT made
here stands in for a sentence-embedding model such as all-MiniLM-L6-v2."""

import copy
import json

import pytest
import torch
import transformers
from safetensors.torch import load_file
from test_dit_policy import TINY, first_batch, windows

from kinema.policies.dit.config import DiTConfig
from kinema.policies.dit.ema import EmaWeights
from kinema.policies.dit.encoders import PretrainedTextEncoder
from kinema.policies.dit.policy import DiTPolicy

WORDS = "pick up hand insert put the a red cube peg socket to into in on with left right arm bin"
TEXTS = [
    "pick up the red cube with the right arm",
    "hand the red cube to the left arm",
    "insert the peg",
]
MAX_TOKENS = 6  # truncates the first two texts: [CLS], four words, [SEP]


@pytest.fixture(scope="module")
def text_model(tmp_path_factory) -> str:
    """A local directory with a tiny random BERT (width 24) and its word-level tokenizer."""
    directory = tmp_path_factory.mktemp("text_model")
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS.split()]
    tokenizer = transformers.BertTokenizer(vocab={word: i for i, word in enumerate(vocabulary)})
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    bert = transformers.BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
    )
    transformers.BertModel(bert).save_pretrained(directory)
    return str(directory)


def with_text_model(path: str) -> DiTConfig:
    return DiTConfig(**{**TINY.__dict__, "text_model": path, "text_max_tokens": 12})


def test_training_moves_the_projection_and_leaves_the_text_model_frozen(
    recorded_dataset, text_model
):
    root, _ = recorded_dataset
    config = with_text_model(text_model)
    loader = windows(root, config, batch_size=8)
    batch = first_batch(loader)
    torch.manual_seed(0)
    policy = DiTPolicy(config, loader.stats).train()
    encoder = policy.text_encoder
    assert isinstance(encoder, PretrainedTextEncoder) and not encoder.text_model.training
    frozen = {name: p.clone() for name, p in encoder.text_model.named_parameters()}
    projection = encoder.project.weight.clone()
    optimiser = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    for _ in range(3):  # the zero-initialised output layer passes no gradient back at step one
        loss = policy.loss(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert torch.isfinite(loss)
    assert encoder.project.weight.grad.abs().sum() > 0
    assert not torch.equal(encoder.project.weight, projection)
    for name, parameter in encoder.text_model.named_parameters():
        assert parameter.grad is None and not parameter.requires_grad, name
        assert torch.equal(parameter, frozen[name]), name


def test_texts_give_their_own_tokens_and_the_tokenizers_padding(text_model):
    torch.manual_seed(0)
    encoder = PretrainedTextEncoder(text_model, hidden_dim=32, max_tokens=MAX_TOKENS)
    tokens, padding = encoder(TEXTS)
    expected = encoder.tokenizer(
        TEXTS, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
    )
    assert tokens.shape == (3, MAX_TOKENS, 32)
    assert torch.equal(padding, expected["attention_mask"] == 0)
    assert padding[2].tolist() == [False] * 5 + [True]  # [CLS] insert the peg [SEP]
    assert not torch.allclose(tokens[0], tokens[1])
    alone, _ = encoder([TEXTS[2]])  # the other texts of a batch do not change a text's tokens
    torch.testing.assert_close(alone[0], tokens[2, :5])


def test_save_then_load_reloads_the_text_model_from_its_path_and_samples_the_same(
    recorded_dataset, text_model, tmp_path
):
    root, _ = recorded_dataset
    config = with_text_model(text_model)
    loader = windows(root, config, batch_size=4)
    batch = first_batch(loader)
    policy = DiTPolicy(config, loader.stats).eval()
    policy.save_pretrained(tmp_path / "policy")
    weights = load_file(str(tmp_path / "policy" / "model.safetensors"))
    assert "text_encoder.project.weight" in weights
    assert not any("text_model" in name for name in weights)
    assert json.loads((tmp_path / "policy" / "config.json").read_text())["text_model"] == text_model
    assert f"`{text_model}`" in (tmp_path / "policy" / "README.md").read_text()

    loaded = DiTPolicy.from_pretrained(tmp_path / "policy")
    first = policy.sample(batch, torch.Generator().manual_seed(5))
    second = loaded.sample(batch, torch.Generator().manual_seed(5))
    assert torch.equal(first, second)
    # what training does with the policy: an EMA of its state, and a copy to export
    ema = EmaWeights(policy)
    ema.update(policy)
    ema.copy_to(copy.deepcopy(loaded))


def test_a_missing_or_unloadable_text_model_is_a_clear_error(recorded_dataset, tmp_path):
    root, _ = recorded_dataset
    stats = windows(root, TINY).stats
    missing = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"DiTConfig\.text_model: '.*missing' is not a"):
        DiTPolicy(with_text_model(missing), stats)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"DiTConfig\.text_model: could not load .*empty"):
        DiTPolicy(with_text_model(str(tmp_path / "empty")), stats)


def test_cached_states_are_those_of_a_fresh_computation(text_model):
    encoder = PretrainedTextEncoder(text_model, hidden_dim=32, max_tokens=MAX_TOKENS, cache_size=2)
    encoder(TEXTS)
    assert list(encoder.cached_states) == TEXTS[1:]  # at most two, the oldest forgotten
    remembered = dict(encoder.cached_states)
    cached, cached_padding = encoder(TEXTS[1:])
    encoder.cached_states.clear()
    fresh, fresh_padding = encoder(TEXTS[1:])
    assert torch.equal(cached, fresh) and torch.equal(cached_padding, fresh_padding)
    for text, states in remembered.items():
        assert torch.equal(encoder.cached_states[text], states)
    inputs = encoder.tokenizer(TEXTS[2], return_tensors="pt")
    with torch.no_grad():
        direct = encoder.text_model(**inputs).last_hidden_state[0]
    assert torch.equal(encoder.cached_states[TEXTS[2]], direct)

    encoder.double()  # casts and moves reach the frozen model; the cache starts anew
    assert not encoder.cached_states
    assert next(encoder.text_model.parameters()).dtype == torch.float64
    assert encoder(TEXTS)[0].dtype == torch.float64
