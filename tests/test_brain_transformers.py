"""TransformersPlanner end to end on a tiny randomly initialised LLaVA model (CLIP vision tower,
Llama text model, byte-level BPE tokenizer, chat template) built and saved in the test, then
loaded through the real from_pretrained path. Random weights answer garbage, so these tests
check the flow: the prompt and images reach the model, answers are parsed, garbage ends in a
BrainError quoting it, and scored checks equal the model's own likelihoods."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from kinema.policies.brain.planner import BrainError
from kinema.policies.brain.prompts import check_messages, plan_messages
from kinema.policies.brain.transformers_backend import (
    TransformersPlanner,
    TransformersPlannerConfig,
)
from kinema.policies.brain.types import VERDICT_STATUSES, BrainObservation
from kinema.types import Subtask

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<image>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' }}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}</s>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
IMAGE_SIZE_PX = 28
PATCH_PX = 14
IMAGE_TOKENS = (IMAGE_SIZE_PX // PATCH_PX) ** 2  # the CLS token is dropped ("default")
SENTENCES = [
    '{"subtasks": [{"skill": "pick", "arm": "right", "object": "red cube", "target": null}]}',
    '{"status": "done", "confidence": 0.9, "reason": "the cube is lifted"}',
    "pick up the red cube with the right arm and hand it to the left arm",
]
SUBTASK = Subtask("pick up the red cube with the right arm", "pick", "right", "red cube", None, 4)


def build_tiny_llava(directory: Path) -> None:
    """Save a random LLaVA (hidden size 32, one layer each) and its processor to ``directory``."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(SENTENCES, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": IMAGE_SIZE_PX},
            crop_size={"height": IMAGE_SIZE_PX, "width": IMAGE_SIZE_PX},
        ),
        tokenizer=tokenizer,
        patch_size=PATCH_PX,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=IMAGE_SIZE_PX,
            patch_size=PATCH_PX,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        image_seq_length=IMAGE_TOKENS,
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(directory)
    processor.save_pretrained(directory)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny_llava")
    build_tiny_llava(directory)
    return directory


def observation() -> BrainObservation:
    rng = np.random.default_rng(0)
    images = {cam: rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for cam in ("high", "wrist")}
    return BrainObservation(images, time_s=1.0, objects=("red cube",))


def test_the_prompt_and_both_images_reach_the_model(model_dir):
    planner = TransformersPlanner(model_dir, TransformersPlannerConfig(max_new_tokens=8, retries=0))
    inputs = planner.inputs(plan_messages("transfer the cube", observation()))
    image_token = planner.model.config.image_token_id
    assert inputs["pixel_values"].shape == (2, 3, IMAGE_SIZE_PX, IMAGE_SIZE_PX)
    assert int((inputs["input_ids"] == image_token).sum()) == 2 * IMAGE_TOKENS
    prompt = planner.processor.decode(inputs["input_ids"][0])
    assert prompt.startswith("<|system|>You plan for a robot")
    assert "Camera high:" in prompt and "Instruction: transfer the cube" in prompt
    assert prompt.endswith("<|assistant|>")

    seen_by_vision: list[tuple[int, ...]] = []
    hook = planner.model.model.vision_tower.register_forward_hook(
        lambda module, args, kwargs_output: seen_by_vision.append(tuple(args[0].shape))
    )
    with pytest.raises(BrainError):
        planner.plan("transfer the cube", observation())
    hook.remove()
    assert seen_by_vision == [(2, 3, IMAGE_SIZE_PX, IMAGE_SIZE_PX)]  # one generate, both images


def test_garbage_plans_end_in_an_error_quoting_the_answers(model_dir):
    planner = TransformersPlanner(model_dir, TransformersPlannerConfig(max_new_tokens=8, retries=1))
    inputs = planner.inputs(plan_messages("transfer the cube", observation()))
    first = planner.model.generate(**inputs, do_sample=False, max_new_tokens=8)
    first_answer = planner.processor.decode(
        first[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )
    with pytest.raises(BrainError) as error:
        planner.plan("transfer the cube", observation())
    message = str(error.value)
    assert message.startswith("TransformersPlanner.plan failed after 2 attempts: attempt 1: ")
    assert f"attempt 1: answer {json.dumps(first_answer)} rejected" in message
    assert "attempt 2: answer " in message


def test_generated_checks_are_validated_too(model_dir):
    planner = TransformersPlanner(model_dir, TransformersPlannerConfig(max_new_tokens=8, retries=0))
    with pytest.raises(BrainError, match=r"TransformersPlanner\.check failed after 1 attempt: "):
        planner.check(SUBTASK, observation())


def reference_log_likelihood(planner: TransformersPlanner, continuation: str) -> float:
    """Σ log p of ``continuation``'s tokens after the check prompt, from the model's own
    shifted cross-entropy (``labels``), independent of the planner's slicing."""
    inputs = planner.inputs(check_messages(SUBTASK, observation()))
    tokens = planner.processor.tokenizer(continuation, add_special_tokens=False).input_ids
    tokens = torch.tensor([tokens])
    input_ids = torch.cat([inputs["input_ids"], tokens], dim=1)
    labels = torch.full_like(input_ids, -100)
    labels[:, -tokens.shape[1] :] = tokens
    with torch.no_grad():
        loss = planner.model(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            pixel_values=inputs["pixel_values"],
            labels=labels,
        ).loss
    return -float(loss) * tokens.shape[1]


def test_scored_checks_rank_the_verdicts_by_the_models_likelihood(model_dir):
    planner = TransformersPlanner(model_dir, TransformersPlannerConfig(check_decode="score"))
    probabilities = planner.status_probabilities(SUBTASK, observation())
    log_likelihoods = torch.tensor(
        [reference_log_likelihood(planner, f'{{"status": "{s}"') for s in VERDICT_STATUSES]
    )
    expected = torch.softmax(log_likelihoods, dim=0).tolist()
    np.testing.assert_allclose(list(probabilities.values()), expected, rtol=1e-4)

    verdict = planner.check(SUBTASK, observation())
    best = max(probabilities, key=probabilities.__getitem__)
    assert (verdict.status, verdict.confidence) == (best, pytest.approx(probabilities[best]))
    assert verdict.reason.startswith("scored by likelihood: done ")


def test_a_missing_directory_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a local model directory"):
        TransformersPlanner(tmp_path / "absent")
