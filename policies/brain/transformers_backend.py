"""A planner over a vision-language model in a local directory, run with transformers.

The directory holds what ``AutoProcessor`` and ``AutoModelForImageTextToText`` load (SmolVLM,
Qwen2.5-VL, LLaVA, Gemma 3, …, or a fine-tuned one) with a chat template that takes images.
Each question is rendered with the chat template, images in place, and answered by greedy
``generate``; the JSON in the answer is validated by ``parse_plan`` / ``parse_verdict`` and
retried as ``ChatPlanner`` describes. Nothing is downloaded: the path must be a directory.

Checks may instead be scored (``check_decode="score"``): the three verdicts are ranked by the
model's likelihood of the answer beginning ``{"status": "<status>"``, and the verdict's
confidence is its probability among the three,

    p(s) = exp(L(s)) / Σ_s' exp(L(s')),   L(s) = Σ_t log p(token_t | prompt, tokens_<t),

which always gives a valid verdict and a graded confidence, where a small model's free-form
JSON is often broken (three forward passes instead of one generation).

Example:
    planner = TransformersPlanner("/models/SmolVLM-256M-Instruct",
                                  TransformersPlannerConfig(device="cuda"))
    subtasks = planner.plan("insert the peg into the socket", observation)
"""

import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, BatchFeature

from kinema.policies.brain.chat_planner import ChatPlanner
from kinema.policies.brain.prompts import Message, check_messages
from kinema.policies.brain.types import VERDICT_STATUSES, BrainObservation, Verdict, VerdictStatus
from kinema.types import Subtask


@dataclass(frozen=True)
class TransformersPlannerConfig:
    """How to run the model.

    Attributes:
        device: the torch device ("cpu", "cuda", "cuda:1").
        dtype: the weights' dtype ("auto": as saved; "bfloat16", "float16", "float32").
        max_new_tokens: the longest answer, in tokens.
        retries: attempts after the first, for each plan, check or replan.
        check_decode: "generate" (free JSON, validated) or "score" (rank the three verdicts by
            likelihood; see the module docstring).
        known_texts: the subtask texts the policy was trained on (None: any the skills phrase).
    """

    device: str = "cpu"
    dtype: str = "auto"
    max_new_tokens: int = 384
    retries: int = 2
    check_decode: Literal["generate", "score"] = "generate"
    known_texts: Collection[str] | None = None


def chat_conversation(messages: list[Message]) -> list[dict[str, Any]]:
    """``messages`` in the form processors' chat templates take: content lists of text parts
    and PIL image parts."""
    return [
        {
            "role": message.role,
            "content": [
                {"type": "text", "text": part}
                if isinstance(part, str)
                else {"type": "image", "image": Image.fromarray(part)}
                for part in message.parts
            ],
        }
        for message in messages
    ]


class TransformersPlanner(ChatPlanner):
    """A ``Planner`` running a local vision-language model (see the module docstring).

    Raises:
        FileNotFoundError: if ``path`` is not a directory.
    """

    def __init__(
        self, path: str | Path, config: TransformersPlannerConfig = TransformersPlannerConfig()
    ):
        super().__init__(config.retries, known_texts=config.known_texts)
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(
                f"TransformersPlanner: expected a local model directory, got {str(path)!r}"
            )
        self.config = config
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = AutoModelForImageTextToText.from_pretrained(path, dtype=config.dtype)
        self.model.to(config.device).eval()

    def inputs(self, messages: list[Message]) -> BatchFeature:
        """The model inputs of ``messages`` with the assistant's turn opened: token ids (images
        expanded to their placeholder tokens), attention mask and pixel values."""
        inputs = self.processor.apply_chat_template(
            chat_conversation(messages),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        return inputs.to(self.model.device)

    def complete(self, messages: list[Message], schema: dict[str, Any], name: str) -> str:
        """Greedy generation. ``schema`` is not enforced while generating (transformers has no
        JSON-schema constraint); the prompt states it and the parser checks the answer."""
        inputs = self.inputs(messages)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, do_sample=False, max_new_tokens=self.config.max_new_tokens
            )
        answer = output[0, inputs["input_ids"].shape[1] :]
        return self.processor.decode(answer, skip_special_tokens=True)

    def check(self, subtask: Subtask, observation: BrainObservation) -> Verdict:
        if self.config.check_decode == "generate":
            return super().check(subtask, observation)
        probabilities = self.status_probabilities(subtask, observation)
        status = max(probabilities, key=probabilities.__getitem__)
        scores = ", ".join(f"{s} {p:.2f}" for s, p in probabilities.items())
        return Verdict(status, probabilities[status], f"scored by likelihood: {scores}")

    def status_probabilities(
        self, subtask: Subtask, observation: BrainObservation
    ) -> dict[VerdictStatus, float]:
        """p(s) of each verdict status s for ``subtask`` seen now (module docstring)."""
        inputs = self.inputs(check_messages(subtask, observation))
        log_likelihoods = [
            self._log_likelihood(inputs, f'{{"status": "{status}"') for status in VERDICT_STATUSES
        ]
        largest = max(log_likelihoods)
        weights = [math.exp(value - largest) for value in log_likelihoods]
        return {s: w / sum(weights) for s, w in zip(VERDICT_STATUSES, weights, strict=True)}

    def _log_likelihood(self, inputs: BatchFeature, continuation: str) -> float:
        """Σ log p(token | everything before it) over the tokens of ``continuation`` following
        the prompt ``inputs``."""
        prompt_ids = inputs["input_ids"]
        tokens = self.processor.tokenizer(
            continuation, add_special_tokens=False, return_tensors="pt"
        ).input_ids.to(prompt_ids.device)
        extended = dict(inputs)
        for key, value in inputs.items():  # token-aligned inputs grow with the continuation
            if not torch.is_tensor(value) or value.shape[:2] != prompt_ids.shape:
                continue
            if key == "input_ids":
                fill = tokens
            elif key == "attention_mask":
                fill = torch.ones_like(tokens)
            else:  # token type ids and the like: text
                fill = torch.zeros_like(tokens)
            extended[key] = torch.cat([value, fill.to(value.dtype)], dim=1)
        with torch.inference_mode():
            logits = self.model(**extended).logits[0].float()
        start = prompt_ids.shape[1] - 1  # logits at position t predict token t + 1
        log_probs = torch.log_softmax(logits[start : start + tokens.shape[1]], dim=-1)
        return float(log_probs.gather(1, tokens[0, :, None]).sum())
