"""The same notebook where no widget can live: saved by ``jupyter nbconvert --execute``, and the
magics in terminal IPython. Both must leave readable text, never a widget's repr."""
from __future__ import annotations

import html
import re
import subprocess
import sys

import nbformat

from _frontends import BATCH_FILES, PROMPT, chat_requests, frontend_env, server_answer, write_notebook

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_REPRS = ("VBox(", "HBox(", "HTML(", "IntProgress(", "Output(", "model_id", "jupyter-widgets")


def _run(cmd, cwd, env, timeout=180) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=dict(env, PYTHONIOENCODING="utf-8"), capture_output=True,
                          encoding="utf-8", errors="replace", timeout=timeout, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{cmd[:4]} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n" \
                                 f"stderr:\n{proc.stderr[-3000:]}"
    return proc


def _table_rows(markup: str) -> list[str]:
    """First data column of each body row of a pandas HTML table."""
    body = markup.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.sub(r"<[^>]+>", "", cells[1]).strip()
            for cells in (re.findall(r"<t[hd][^>]*>.*?</t[hd]>", row, re.S)
                          for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S))]


def test_nbconvert_execute_saves_the_answer_and_the_table_as_text_and_html(server, tmp_path):
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    write_notebook(root)
    _run([sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "live.ipynb",
          "--output", "executed.ipynb", "--ExecutePreprocessor.timeout=120"], root, frontend_env(server, home))
    cells = nbformat.read(root / "executed.ipynb", as_version=4).cells
    (rec,) = chat_requests(server)
    answer = server_answer(rec, 0)

    ask = cells[1].outputs
    assert ask and all(WIDGET_MIME not in o.get("data", {}) for o in ask)  # the live view was replaced
    final = ask[-1]["data"]
    assert final["text/plain"].startswith(answer + "\n[")  # the answer, then [summary] and the cost line
    assert "this call $0." in final["text/plain"]
    assert f"{html.escape(answer)}</pre>" in final["text/html"]

    batch = cells[2].outputs
    assert all(WIDGET_MIME not in o.get("data", {}) for o in batch)
    summary = batch[0]["data"]
    assert re.match(r"3/3 files · 100% · [\d.]+ (files/s|s/file) · \$0\.\d+ · [\d.]+ s elapsed\n"
                    r"these 3 calls \$0\.\d+ · session \$0\.\d+ \(4 calls\)$",
                    summary["text/plain"]), summary["text/plain"]
    assert "3/3 files" in summary["text/html"]
    for cell in (cells[2], cells[3]):
        result = cell.outputs[-1]
        assert result["output_type"] == "execute_result"
        assert _table_rows(result["data"]["text/html"]) == list(BATCH_FILES)
        assert all(name in result["data"]["text/plain"] for name in BATCH_FILES)


def test_terminal_ipython_prints_plain_text_not_widgets(server, tmp_path):
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    write_notebook(root)
    code = "\n".join([
        "%load_ext voxmagic",
        f"get_ipython().run_cell_magic('voxtral', 'talk.mp3 -o ans', {PROMPT!r})",
        "%voxtral_transcribe a.mp3 b.mp3 c.mp3 -o df",
        "print('rows:', len(df), list(df.source))",
    ])
    out = _run([sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", "--quick", "-c", code],
               root, frontend_env(server, home)).stdout
    (rec,) = chat_requests(server)
    answer = server_answer(rec, 0)
    assert f"{answer}\n[" in out  # streamed as text, then [summary]
    assert re.search(r"^this call \$0\.\d+ · session \$0\.\d+ \(1 call\)$", out, re.M), out
    for k, name in enumerate(BATCH_FILES, start=1):
        assert re.search(rf"^\[{k}/3\] ✓ \w\.mp3 · ", out, re.M), out  # one progress line per file
    assert f"rows: 3 {list(BATCH_FILES)}" in out
    assert not [r for r in WIDGET_REPRS if r in out], out
