"""The magics in a real ipykernel driven by nbclient, as nbconvert or papermill would run them."""
from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient


def execute(cells, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb.cells


SETUP = ("from voxmagic.testing import use_local_server\n"
         "server = use_local_server(token_rate=400, answer_tokens=300)\n"
         "from voxmagic.testing.synth import tone_file\n"
         "tone_file('talk.mp3', 2.0); tone_file('b.wav', 1.0)\n"
         "%load_ext voxmagic")


def texts(cell):
    return [o.get("data", {}).get("text/plain", "") or o.get("text", "") for o in cell.outputs]


def test_stored_output_is_the_final_answer_not_a_widget(tmp_path, monkeypatch):
    cells = execute([SETUP, "%%voxtral talk.mp3 -o ans\nWhat is said?",
                     "print(len(ans.split()), _voxtral.cost_usd == server.requests[-1].cost)"],
                    tmp_path, monkeypatch)
    outputs = cells[1].outputs
    mimes = [set(o.get("data", {})) for o in outputs]
    assert all("application/vnd.jupyter.widget-view+json" not in m for m in mimes)  # replaced
    final = outputs[-1]["data"]
    assert final["text/plain"].startswith("Heard 1 clips: [1] 2.000 s mp3")
    assert "this call $0." in final["text/plain"] and "session $0." in final["text/html"]
    assert any("audio" in o.get("data", {}).get("text/html", "") for o in outputs[:-1])  # the player
    assert texts(cells[2]) == ["300 True\n"]


def test_transcribe_in_a_kernel_shows_progress_then_the_table(tmp_path, monkeypatch):
    cells = execute([SETUP, "%voxtral_transcribe talk.mp3 b.wav -o df",
                     "print(df.shape[0], df['error'].isna().all())"], tmp_path, monkeypatch)
    out = cells[1].outputs
    assert out[0]["data"]["text/plain"].startswith("2/2 files · 100% · ")
    assert out[-1]["output_type"] == "execute_result" and "duration_s" in out[-1]["data"]["text/html"]
    assert texts(cells[2]) == ["2 True\n"]


def test_the_python_api_shows_the_same_live_views_in_a_kernel(tmp_path, monkeypatch):
    """voxmagic.ask and voxmagic.transcribe in a notebook stream into a view, then leave the
    answer (or the batch's final header) and the cost line — and still return their values."""
    cells = execute([SETUP, "import voxmagic\nr = voxmagic.ask('talk.mp3', 'What is said?')",
                     "df = voxmagic.transcribe(['talk.mp3', 'b.wav'])",
                     "print(len(r.text.split()), r.cost_usd == server.requests[-3].cost, df.shape[0])"],
                    tmp_path, monkeypatch)
    asked, batch = cells[1].outputs, cells[2].outputs
    assert all("application/vnd.jupyter.widget-view+json" not in o.get("data", {}) for o in asked + batch)
    final = asked[-1]["data"]["text/plain"]
    assert final.startswith("Heard 1 clips: [1] 2.000 s mp3") and "this call $0." in final
    assert batch[-1]["data"]["text/plain"].startswith("2/2 files · 100% · ")
    assert texts(cells[3]) == ["300 True 2\n"]


def test_a_user_error_in_a_kernel_is_one_line(tmp_path, monkeypatch):
    from nbclient.exceptions import CellExecutionError

    with pytest.raises(CellExecutionError) as err:
        execute([SETUP, "%%voxtral nowhere.mp3\nQ"], tmp_path, monkeypatch)
    assert "UsageError" in str(err.value) and "no such file: nowhere.mp3" in str(err.value)
