"""Which LLMs get the figures as images, and the OpenAI-compatible LLM factory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import LLMMetadata
from llama_index.core.llms.mock import MockLLM

from multimodal_rag.errors import LLMError
from multimodal_rag.llms import (
    log_choice,
    multimodal_choice,
    openai_compatible_llm,
    settings_llm,
    supports_images,
    vision_family,
)
from tests.test_engine import RecordingLLM


class NamedChatLLM(RecordingLLM):
    """A chat LLM that reports a model name, as provider classes do in their metadata."""

    model_name: str = "unknown"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=True, model_name=self.model_name)


class DeclaringLLM(RecordingLLM):
    """An LLM class that says itself whether it reads images."""

    supports_images: bool = False

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=True, model_name="gpt-4o")


VISION = [
    "gpt-4o",
    "gpt-4o-mini-2024-07-18",
    "chatgpt-4o-latest",
    "openai/gpt-4.1-nano",
    "gpt-4.5-preview",
    "gpt-5",
    "gpt-5-mini",
    "gpt-4-turbo-2024-04-09",
    "o1",
    "o3",
    "o4-mini",
    "claude-3-haiku-20240307",
    "claude-3-5-sonnet-latest",
    "claude-3-7-sonnet-20250219",
    "claude-sonnet-4-20250514",
    "claude-opus-4-1",
    "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
    "gemini-1.5-flash",
    "models/gemini-2.0-flash",
    "gemini-2.5-pro",
    "gemini-pro-vision",
    "gemma3",
    "gemma3:4b",
    "google/gemma-3-27b-it",
    "llava",
    "llava:13b",
    "bakllava",
    "llava-phi3",
    "qwen2.5vl:7b",
    "Qwen/Qwen2.5-VL-7B-Instruct",
    "qwen2-vl-72b",
    "qwen3-vl:8b",
    "llama3.2-vision",
    "llama3.2-vision:11b",
    "meta-llama/Llama-3.2-11B-Vision-Instruct",
    "llama4:scout",
    "pixtral-12b-2409",
    "mistral-small3.1",
    "minicpm-v",
    "moondream",
    "granite3.2-vision",
    "internvl3-8b",
    "HuggingFaceTB/SmolVLM-Instruct",
]
TEXT = [
    "gpt-3.5-turbo",
    "gpt-4",
    "gpt-4-turbo-preview",
    "gpt-4-0125-preview",
    "o1-mini",
    "o1-preview",
    "o3-mini",
    "gpt-oss:20b",
    "claude-2.1",
    "claude-instant-1.2",
    "gemini-pro",
    "gemini-1.0-pro",
    "gemma3:270m",
    "gemma3:1b",
    "google/gemma-3-1b-it",
    "gemma-3-270m",
    "gemma2:9b",
    "llama3.1:8b",
    "llama3.2",
    "mistral",
    "qwen2.5:7b",
    "phi3",
    "deepseek-r1:14b",
    "unknown",
]


@pytest.mark.parametrize("name", VISION)
def test_vision_model_names_get_images(name: str) -> None:
    found = vision_family(name)
    assert found is not None and found[1], name
    choice = multimodal_choice(NamedChatLLM(model_name=name))
    assert choice.images, choice.reason
    assert name in choice.reason and "reads images" in choice.reason


@pytest.mark.parametrize("name", TEXT)
def test_text_model_names_get_text(name: str) -> None:
    choice = multimodal_choice(NamedChatLLM(model_name=name))
    assert not choice.images, choice.reason


def test_the_callers_choice_and_the_llms_own_flag_win_over_the_name() -> None:
    vision = NamedChatLLM(model_name="gpt-4o")
    assert multimodal_choice(vision, multimodal=False) == multimodal_choice(None, False)
    assert not multimodal_choice(vision, multimodal=False).images
    assert multimodal_choice(NamedChatLLM(), multimodal=True).images
    # Declared on the LLM: honoured even against a vision model name.
    declared = multimodal_choice(DeclaringLLM())
    assert not declared.images and "declares supports_images=False" in declared.reason
    assert supports_images(DeclaringLLM(supports_images=True))
    # Without an LLM there is nobody to send images to, even when asked.
    assert not multimodal_choice(None, multimodal=True).images


def test_a_completion_model_never_gets_images_whatever_its_name() -> None:
    llm = MockLLM()
    choice = multimodal_choice(llm)
    assert not choice.images and "completion model" in choice.reason


def test_openai_compatible_llm_names_decide_through_the_real_class() -> None:
    vision = openai_compatible_llm("http://127.0.0.1:9/v1", "llava:13b")
    text = openai_compatible_llm("http://127.0.0.1:9", "llama3.1:8b")
    assert type(vision).__name__ == "OpenAILike" and vision.metadata.is_chat_model
    assert supports_images(vision) and not supports_images(text)
    # A URL without a path gets the /v1 every OpenAI-compatible server uses.
    assert getattr(text, "api_base", None) == "http://127.0.0.1:9/v1"


def test_openai_compatible_llm_takes_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert getattr(openai_compatible_llm("http://h:1/v1", "m"), "api_key", None) == "sk-from-env"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert getattr(openai_compatible_llm("http://h:1/v1", "m"), "api_key", None) == "no-key"


@pytest.mark.parametrize(
    ("url", "model", "message"),
    [
        ("127.0.0.1:8080", "m", "http://HOST:PORT/v1"),
        ("ftp://h/v1", "m", "http"),
        ("http://h", " ", "model"),
    ],
)
def test_openai_compatible_llm_rejects_bad_settings(url: str, model: str, message: str) -> None:
    with pytest.raises(LLMError, match=message):
        openai_compatible_llm(url, model)


def test_the_choice_is_logged_once_per_llm_and_outcome(caplog: pytest.LogCaptureFixture) -> None:
    llm = NamedChatLLM(model_name="llava:7b-test-log-once")
    with caplog.at_level(logging.INFO, logger="multimodal_rag.llms"):
        for _ in range(3):
            log_choice(llm, multimodal_choice(llm))
    lines = [r.getMessage() for r in caplog.records if "llava:7b-test-log-once" in r.getMessage()]
    assert lines == [
        "figures sent as images: NamedChatLLM model 'llava:7b-test-log-once': "
        "LLaVA (llava, bakllava, llava-llama3, llava-phi3) reads images"
    ]


def test_settings_llm_is_used_only_when_the_application_set_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llama_index.core import Settings

    monkeypatch.setattr(Settings, "_llm", None)
    assert settings_llm() is None  # never LlamaIndex's default OpenAI client
    chosen: Any = NamedChatLLM(model_name="gpt-4o")
    monkeypatch.setattr(Settings, "_llm", chosen)
    assert settings_llm() is chosen
    # `Settings.llm = None` is LlamaIndex's "disabled" (a bare MockLLM): no LLM here.
    Settings.llm = None
    assert type(Settings._llm) is MockLLM and settings_llm() is None


def test_the_docs_table_lists_every_family() -> None:
    from multimodal_rag.llms import VISION_FAMILIES

    page = (Path(__file__).resolve().parents[1] / "docs" / "llamaindex.md").read_text()
    for family, _, images in VISION_FAMILIES:
        assert f"| {family} | {'yes' if images else 'no'} |" in page, family
