"""The prompt: an instruction, the label set with descriptions, optional few-shot turns, the input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nerre.example import Example
from nerre.formulation import Formulation


@dataclass
class PromptSettings:
    """How prompts are written.

    Args:
        describe_labels: list each label with its description (off: names only).
        few_shot: how many training examples to show before the input (0: none).
        instruction: an extra sentence placed before the format instruction, e.g. the domain.
    """

    describe_labels: bool = True
    few_shot: int = 0
    instruction: str = ""


class PromptBuilder:
    """Writes prompts for one formulation.

    Args:
        formulation: supplies the output-format instruction, the labels and the few-shot targets.
        settings: what the prompt contains.
        shots: the examples to show as few-shot turns (the first ``settings.few_shot`` are used).
    """

    def __init__(self, formulation: Formulation, settings: PromptSettings | None = None, shots: Sequence[Example] = ()):
        self.formulation = formulation
        self.settings = settings or PromptSettings()
        self.shots = list(shots)[: self.settings.few_shot]
        self._header = self._make_header()

    def _make_header(self) -> str:
        schema, describe = self.formulation.schema, self.settings.describe_labels
        lines = [self.settings.instruction.strip()] if self.settings.instruction.strip() else []
        lines.append(self.formulation.instruction())
        lines.append("Entity types:")
        lines += [_item(label.display, label.description if describe else "") for label in schema.entities]
        if schema.relations:
            lines.append("Relation types:")
            lines += [_item(label.display, label.description if describe else "") for label in schema.relations]
        lines.append("")
        for shot in self.shots:
            lines += [f"Text: {shot.text}", "Answer:", self.formulation.encode(shot), ""]
        return "\n".join(lines)

    def prompt(self, text: str) -> str:
        """The prompt for one input text; the answer follows it directly."""
        return f"{self._header}\nText: {text}\nAnswer:\n"


def prompt_ids(tokenizer: Any, prompts: PromptBuilder, text: str) -> list[int]:
    """Token ids of the prompt for ``text``, as training and decoding both tokenize it: rendered with the
    chat template when the tokenizer has one (which then supplies the bos token), else plain text."""
    from nerre.models import format_prompt

    chat = bool(getattr(tokenizer, "chat_template", None))
    return tokenizer(format_prompt(tokenizer, prompts.prompt(text)), add_special_tokens=not chat)["input_ids"]


def _item(name: str, description: str) -> str:
    return f"- {name}: {description}" if description else f"- {name}"
