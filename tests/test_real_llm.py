"""A real small LLM (Gemma 3 270M, on the CPU) writes a cited answer through the engine."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from llama_index.core.prompts import PromptTemplate

from multimodal_rag.engine import CitedQueryEngine

from .support.hf_llm import CACHE, TransformersLLM, load_gemma
from .test_engine import IRIS, LENS, FakeRetriever, text_node

# A 270M base model continues patterns rather than following instructions: one worked
# example shows it what a cited answer looks like. It copies the example's form (the
# number first), so this test checks the pipeline around a real model -- prompt, greedy
# generation, markers read back into citations -- not the model's choice of source.
ONE_SHOT = (
    "Answer from the numbered sources; start with the number of the source you use.\n"
    "Sources:\n[1] The switch is on the left of the base.\n[2] The bulb is a 40 W E14 type.\n"
    "Question: Where is the switch?\nAnswer: [1] The switch is on the left of the base."
)


@pytest.mark.slow
def test_gemma_270m_writes_an_answer_citing_the_source_that_holds_it(tmp_path: Path) -> None:
    started = time.perf_counter()
    cold = not CACHE.is_dir()
    llm = TransformersLLM(*load_gemma(CACHE))
    loaded = time.perf_counter()
    engine = CitedQueryEngine(
        FakeRetriever([text_node(40, IRIS), text_node(42, LENS, section=None, index=1)]), llm=llm
    )
    # Gemma 3 270M has no vision encoder: the model table sends it text only.
    assert not engine.multimodal and "text-only" in engine.multimodal_reason
    engine.update_prompts({"system_prompt": PromptTemplate(ONE_SHOT)})

    response = engine.query("What does the iris control?")

    text = str(response)
    meta = response.metadata or {}
    assert meta["mode"] == "llm"
    assert "pupil" in text.lower(), text  # generated from source [1], not from the example
    assert "switch" not in text.lower(), text
    assert meta["cited"] == [1], text
    assert [c["page"] for c in meta["citations"]] == [40, 42]
    print(
        f"gemma ({'cold' if cold else 'cached'}): loaded in {loaded - started:.1f} s, "
        f"answered {text!r} in {time.perf_counter() - loaded:.1f} s"
    )
