"""Which LLM gets the figures as images, and an LLM for any OpenAI-compatible server.

A query engine sends figure images to the LLM only when the LLM can read them.
llama-index-core 0.14 has no flag for that (``LLMMetadata`` carries
context_window, num_output, is_chat_model, is_function_calling_model,
model_name and system_role), so :func:`multimodal_choice` decides, in order:

1. ``multimodal=True`` / ``False`` passed by the caller wins.
2. No LLM: nothing to send.
3. A flag the LLM declares: ``is_multi_modal``, ``is_multimodal``,
   ``supports_images`` or ``supports_vision`` on ``llm.metadata`` or on the LLM.
4. A completion-only LLM (``metadata.is_chat_model`` false) gets text: its
   prompt is a plain string, and image blocks would be dropped on the way.
5. The model name (``metadata.model_name``, else ``llm.model``) against
   :data:`VISION_FAMILIES`, first match wins; a name in no family gets text.

The name is compared in lower case and anywhere in the string, so provider
prefixes and tags match too: ``openai/gpt-4o``, ``models/gemini-2.0-flash``,
``us.anthropic.claude-3-5-sonnet-20240620-v1:0``, ``llava:13b``,
``Qwen/Qwen2.5-VL-7B-Instruct``.

LlamaIndex LLM classes whose ``chat()`` turns our image blocks into the
provider's image parts: ``OpenAI``, ``AzureOpenAI``, ``OpenAILike`` (any
OpenAI-compatible server: Ollama, llama.cpp server, vLLM, LM Studio),
``OpenRouter``, ``Anthropic``, ``BedrockConverse``, ``Gemini``,
``GoogleGenAI``, ``Vertex``, ``Ollama`` and ``MistralAI``. With another class,
check that it forwards ``ImageBlock``s before passing ``multimodal=True``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import LLMError

if TYPE_CHECKING:
    from llama_index.core.llms.llm import LLM

logger = logging.getLogger(__name__)

__all__ = [
    "VISION_FAMILIES",
    "MultimodalChoice",
    "multimodal_choice",
    "openai_compatible_llm",
    "settings_llm",
    "supports_images",
    "vision_family",
]

# (family, pattern, accepts images). First match wins, so the text-only members of a
# vision family come before it. Patterns are searched in the lower-cased model name.
VISION_FAMILIES: tuple[tuple[str, str, bool], ...] = (
    # OpenAI reasoning models released without image input.
    ("OpenAI o1-mini / o1-preview / o3-mini", r"(?<![a-z0-9])o(1-mini|1-preview|3-mini)", False),
    # GPT-4 Turbo previews before 2024-04-09 were text-only.
    ("OpenAI gpt-4-turbo-preview", r"gpt-4-(turbo-preview|\d{4}-preview)", False),
    (
        "OpenAI gpt-4o, gpt-4.1, gpt-4.5, gpt-5, gpt-4-turbo, gpt-4-vision",
        r"gpt-(4o|4\.1|4\.5|5|4-turbo|4-vision|4-\d{4}-vision)",
        True,
    ),
    ("OpenAI o1, o3, o4", r"(?<![a-z0-9])o[134](?![0-9])", True),
    ("Anthropic Claude 3 and later", r"claude-([3-9]|(opus|sonnet|haiku)-[4-9])", True),
    # Gemini 1.0 Pro ("gemini-pro") had a separate -vision model.
    ("Google Gemini 1.0 Pro", r"gemini-(1\.0-)?pro(?!-vision)(?![-.0-9a-z])", False),
    ("Google Gemini", r"gemini", True),
    # Gemma 3 270M and 1B have no vision encoder; 4B, 12B and 27B do.
    ("Google Gemma 3 270M / 1B", r"gemma-?3[-:_]?(270m|1b)", False),
    ("Google Gemma 3 4B and larger", r"gemma-?3(?!n)(?![0-9])", True),
    ("PaliGemma", r"paligemma", True),
    ("LLaVA (llava, bakllava, llava-llama3, llava-phi3)", r"llava", True),
    ("Qwen-VL (qwen2-vl, qwen2.5-vl, qwen2.5vl, qwen3-vl), QVQ", r"qwen[0-9.]*-?vl|qvq", True),
    ("Llama 3.2 Vision", r"llama-?3\.2-?(\d+b-)?vision", True),
    ("Llama 4 (Scout, Maverick)", r"llama-?4", True),
    ("Pixtral", r"pixtral", True),
    ("Mistral Small 3.1+ / Medium 3", r"mistral-(small-?3\.[1-9]|medium-?3)", True),
    ("MiniCPM-V", r"minicpm-?(v|o)", True),
    ("Moondream", r"moondream", True),
    (
        "other open vision models (InternVL, Idefics, SmolVLM, Molmo, CogVLM, GLM-4V, "
        "DeepSeek-VL, Kimi-VL, Phi-4 multimodal)",
        r"internvl|idefics|smolvlm|molmo|cogvlm|glm-4v|deepseek-vl|kimi-vl|phi-?4-multimodal",
        True,
    ),
    # Names that say so: llama3.2-vision, granite3.2-vision, phi-3.5-vision, aya-vision, *-vl.
    ("a name that says vision / -vl / vlm", r"vision|(?<![a-z])vlm?(?![a-z])", True),
)
_COMPILED = tuple((family, re.compile(p), images) for family, p, images in VISION_FAMILIES)
_FLAGS = ("is_multi_modal", "is_multimodal", "supports_images", "supports_vision")


@dataclass(frozen=True)
class MultimodalChoice:
    """Whether an engine sends figures to its LLM as images, and why.

    Attributes:
        images: Figures (and a query image) go to the LLM as image blocks.
        reason: One sentence a log line or a user can read.
    """

    images: bool
    reason: str


def vision_family(model_name: str) -> tuple[str, bool] | None:
    """The family of :data:`VISION_FAMILIES` a model name belongs to, and whether it sees images.

    Example:
        >>> vision_family("gpt-4o-mini")
        ('OpenAI gpt-4o, gpt-4.1, gpt-4.5, gpt-5, gpt-4-turbo, gpt-4-vision', True)
        >>> vision_family("gemma3:270m")
        ('Google Gemma 3 270M / 1B', False)
        >>> vision_family("llama3.1:8b") is None
        True
    """
    name = model_name.strip().lower()
    for family, pattern, images in _COMPILED:
        if pattern.search(name):
            return family, images
    return None


def _declared_flag(llm: LLM) -> tuple[str, bool] | None:
    try:
        metadata: Any = llm.metadata
    except Exception:  # noqa: BLE001 - a broken metadata property just means "not declared"
        metadata = None
    for owner, where in ((metadata, "metadata."), (llm, "")):
        for flag in _FLAGS:
            value = getattr(owner, flag, None)
            if isinstance(value, bool):
                return f"{where}{flag}", value
    return None


def _model_name(llm: LLM) -> str:
    name = str(getattr(llm.metadata, "model_name", "") or "")
    if name in ("", "unknown"):
        name = str(getattr(llm, "model", "") or "")
    return name


def multimodal_choice(llm: LLM | None, multimodal: bool | None = None) -> MultimodalChoice:
    """Decide whether ``llm`` receives the figures as images (see the module docstring).

    Args:
        llm: The engine's LLM, or ``None`` (extractive answers).
        multimodal: The caller's choice; ``None`` decides from the LLM.

    Example:
        >>> from llama_index.core.llms import MockLLM
        >>> multimodal_choice(MockLLM()).images
        False
        >>> multimodal_choice(MockLLM(), multimodal=True).reason
        'multimodal=True was passed'
    """
    if multimodal is not None:
        if llm is None and multimodal:
            return MultimodalChoice(False, "multimodal=True, but there is no LLM to send images to")
        return MultimodalChoice(bool(multimodal), f"multimodal={multimodal} was passed")
    if llm is None:
        return MultimodalChoice(False, "no LLM: extractive answers")
    kind = type(llm).__name__
    declared = _declared_flag(llm)
    if declared is not None:
        flag, value = declared
        return MultimodalChoice(value, f"{kind} declares {flag}={value}")
    if not getattr(llm.metadata, "is_chat_model", False):
        return MultimodalChoice(
            False, f"{kind} is a completion model (is_chat_model=False): its prompt is text only"
        )
    name = _model_name(llm)
    found = vision_family(name) if name else None
    if found is None:
        return MultimodalChoice(
            False,
            f"{kind} model {name or '(unnamed)'!r} is in no known vision family; "
            "pass multimodal=True if it reads images",
        )
    family, images = found
    verb = "reads images" if images else "is text-only"
    return MultimodalChoice(images, f"{kind} model {name!r}: {family} {verb}")


def supports_images(llm: LLM) -> bool:
    """Whether ``llm`` accepts image blocks, by :func:`multimodal_choice`'s rules.

    Example:
        >>> from llama_index.core.llms import MockLLM
        >>> supports_images(MockLLM())
        False
    """
    return multimodal_choice(llm).images


_logged: set[tuple[str, str, bool, str]] = set()
_logged_lock = threading.Lock()


def log_choice(llm: LLM | None, choice: MultimodalChoice) -> None:
    """Log the choice at INFO, once per LLM class, model and outcome in this process."""
    key = (
        type(llm).__name__,
        _model_name(llm) if llm is not None else "",
        choice.images,
        choice.reason,
    )
    with _logged_lock:
        if key in _logged:
            return
        _logged.add(key)
    mode = "figures sent as images" if choice.images else "figures sent as text"
    logger.info("%s: %s", mode, choice.reason)


def settings_llm() -> LLM | None:
    """``Settings.llm`` when the application has set one, else ``None``.

    Reading ``Settings.llm`` directly would build LlamaIndex's default OpenAI
    client (an error without the package or a key); an engine without an LLM
    answers extractively instead. ``Settings.llm = None`` (which LlamaIndex
    turns into a plain ``MockLLM``) also means "no LLM" here.
    """
    from llama_index.core import Settings
    from llama_index.core.llms.mock import MockLLM

    llm: LLM | None = getattr(Settings, "_llm", None)
    if llm is None or type(llm) is MockLLM:
        return None
    return llm


def _api_base(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LLMError(f"the LLM URL must look like http://HOST:PORT/v1, got {url!r}", url=url)
    base = url.strip().rstrip("/")
    # Ollama, llama.cpp, vLLM and LM Studio all serve the OpenAI API under /v1.
    return base if parts.path.strip("/") else base + "/v1"


def openai_compatible_llm(
    url: str,
    model: str,
    *,
    api_key: str | None = None,
    timeout: float = 120.0,
    max_retries: int = 1,
    context_window: int = 8192,
    max_tokens: int | None = 1024,
    temperature: float = 0.1,
) -> LLM:
    """A LlamaIndex LLM for any OpenAI-compatible chat server.

    Needs ``pip install llama-index-llms-openai-like`` (the ``llm`` extra).

    Args:
        url: The API base, e.g. ``http://127.0.0.1:11434/v1`` (Ollama),
            ``http://127.0.0.1:8080/v1`` (llama.cpp server), ``http://HOST:8000/v1``
            (vLLM), ``https://api.openai.com/v1``. A URL without a path gets ``/v1``.
        model: The model name the server knows (``llava:13b``, ``gpt-4o``, ...).
        api_key: Defaults to ``OPENAI_API_KEY`` when set; local servers accept any key.
        timeout: Seconds to wait for one answer.
        max_retries: Retries of a failed request.
        context_window: The model's context, for LlamaIndex's prompt budgeting.
        max_tokens: Longest answer.
        temperature: Sampling temperature.

    Returns:
        An ``OpenAILike`` chat model (``is_chat_model=True``: every server above
        speaks ``/chat/completions``, the endpoint that takes image parts).

    Raises:
        LLMError: A malformed URL, an empty model name or the integration missing.

    Example:
        >>> llm = openai_compatible_llm("http://127.0.0.1:11434", "llava")  # doctest: +SKIP
        >>> llm.api_base                                                     # doctest: +SKIP
        'http://127.0.0.1:11434/v1'
    """
    base = _api_base(url)
    if not model.strip():
        raise LLMError("give the model name the server serves (--llm-model NAME)", url=url)
    try:
        from llama_index.llms.openai_like import OpenAILike
    except ImportError as e:
        raise LLMError(
            "an OpenAI-compatible LLM needs: pip install llama-index-llms-openai-like "
            f"(or multimodal_rag[llm]): {e}",
            url=url,
            model=model,
        ) from e
    key = api_key or os.environ.get("OPENAI_API_KEY") or "no-key"
    llm: LLM = OpenAILike(
        model=model.strip(),
        api_base=base,
        api_key=key,
        is_chat_model=True,
        context_window=context_window,
        max_tokens=max_tokens,
        temperature=temperature,
        timeout=timeout,
        max_retries=max_retries,
    )
    return llm
