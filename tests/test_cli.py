"""The command line contract: one JSON document on stdout, exit 2 with one line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from multimodal_rag.cli import main

from .support.pdfs import EXPECTED_FIGURES, make_manual_pdf
from .support.scripts import run_mmrag


@pytest.fixture(scope="module")
def manual(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_manual_pdf(tmp_path_factory.mktemp("pdf") / "manual.pdf")


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "from multimodal_rag import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'torch', 'transformers', 'chromadb', 'pymupdf', 'llama_index', 'onnxruntime'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ingest" in out.stdout
    assert out.stderr.strip().splitlines()[-1] == "[]"


def test_figures_json_follows_the_contract(
    manual: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["figures", str(manual), "--out", str(tmp_path / "figs"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["doc"] == "manual.pdf"
    got = [(f["page"], f["figure"], f["caption"], f["kind"]) for f in payload["figures"]]
    assert got == [(e["page"], e["label"], e["caption"], e["kind"]) for e in EXPECTED_FIGURES]
    for fig in payload["figures"]:
        assert set(fig) >= {"page", "bbox", "figure", "caption", "kind", "image"}
        assert Path(fig["image"]).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["figures", "/nonexistent.pdf"], "no such file"),
        (["query", "", "--store", "{tmp}/s"], "empty"),
        (["query", "hello", "--store", "{tmp}/none"], "mmrag ingest"),
        (["info", "--store", "{tmp}/none"], "mmrag ingest"),
        (["ingest", "{tmp}/missing.pdf", "--store", "{tmp}/s"], "no such file"),
        (["eval", "{tmp}/qa.jsonl", "--store", "{tmp}/none"], "qa.jsonl"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "qa.jsonl").write_text("{not json\n")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("mmrag: error:")
    assert message in err
    assert "Traceback" not in err


def test_argparse_errors_also_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["query", "x"])  # neither --store nor --chroma-url
    assert exc.value.code == 2


@pytest.mark.slow
def test_ingest_query_info_eval_remove_round_trip(manual: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    done = run_mmrag(
        "ingest", str(manual), "--store", store, "--profile", "offline", "--no-ocr", "--json"
    )
    assert done.returncode == 0, done.stderr
    ingest = json.loads(done.stdout)
    assert [d["status"] for d in ingest["documents"]] == ["added"]

    again = json.loads(run_mmrag("ingest", str(manual), "--store", store, "--json").stdout)
    assert [d["status"] for d in again["documents"]] == ["unchanged"]
    assert again["embeddings_computed"] == 0

    query = run_mmrag("query", "front panel connectors", "--store", store, "--top-k", "3", "--json")
    assert query.returncode == 0, query.stderr
    payload = json.loads(query.stdout)
    assert payload["query"] == "front panel connectors"
    top = payload["hits"][0]
    assert set(top) == {
        "rank",
        "kind",
        "doc",
        "page",
        "figure",
        "caption",
        "text",
        "image",
        "score",
    }
    assert (top["rank"], top["kind"], top["doc"], top["page"], top["figure"]) == (
        1,
        "figure",
        "manual.pdf",
        2,
        "Figure 1.1",
    )
    assert len(payload["hits"]) == 3

    info = json.loads(run_mmrag("info", "--store", store, "--json").stdout)
    assert info["documents"][0]["doc"] == "manual.pdf" and info["figures"] == 2
    assert info["models"]["profile"] == "offline"

    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps(
            {
                "id": "q1",
                "query": "front panel connectors",
                "kind": "figure",
                "relevant": [{"doc": "manual.pdf", "figure": "Fig. 1.1"}],
            }
        )
        + "\n"
    )
    result = json.loads(run_mmrag("eval", str(qa), "--store", store, "--json").stdout)
    assert result["metrics"]["all"]["mrr"] == 1.0
    assert result["queries"][0]["hits"][0] == top | {
        "score": result["queries"][0]["hits"][0]["score"]
    }

    ask = run_mmrag("ask", "Where are the connectors?", "--store", store)
    assert ask.returncode == 0 and "manual.pdf" in ask.stdout

    assert run_mmrag("remove", "manual.pdf", "--store", store, "--json").returncode == 0
    assert json.loads(run_mmrag("info", "--store", store, "--json").stdout)["documents"] == []
    gone = run_mmrag("remove", "manual.pdf", "--store", store)
    assert gone.returncode == 2 and "not in the store" in gone.stderr
