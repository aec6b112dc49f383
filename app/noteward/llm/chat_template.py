"""Chat templates for GGUF files that carry none in ``tokenizer.chat_template``.

The packaged Gemma 3 270M is the pretrained model: its GGUF has no chat template, yet its
vocabulary has Gemma's turn tokens (``<start_of_turn>``, ``<end_of_turn>``; llama.cpp counts
``<end_of_turn>`` as an end-of-generation token). A model fine-tuned from it with the
reference-v2 recipe is trained on Gemma's turn format, and the runtime must wrap prompts the
same way, so the template lives here, once, for both (``noteward.training.trainer`` sets it on
the tokenizer; ``noteward.llm.runtime`` falls back to it by the GGUF's architecture).

No ``bos_token`` in either template: the tokenizer adds BOS where the model wants one
(``add_bos`` in llama.cpp, ``add_bos_token`` in transformers), so it is never doubled.
"""

from __future__ import annotations

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Gemma 3's turn format (as in its instruction-tuned template, system text folded into the
# first user turn, ``assistant`` spelled ``model``).
GEMMA_TURNS = (
    "{% set ns = namespace(prefix='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.prefix = message['content'] + '\n\n' %}"
    "{% else %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n'"
    " + ns.prefix + message['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{% set ns.prefix = '' %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

_BY_ARCH = {"gemma3": GEMMA_TURNS}


def fallback_template(architecture: str | None) -> str:
    """The template to use when a GGUF of ``architecture`` (``general.architecture``) has none."""
    return _BY_ARCH.get(str(architecture or ""), CHATML)
