"""Live widget updates per second while ``%%voxtral`` streams 2,000 tokens at 1,000 tokens/s, and
whether the widget's final text is exact.

    python benchmarks/widgets.py [--repeat 3]

Runs a real ``IPython.core.interactiveshell.InteractiveShell`` in this process (``%load_ext
voxmagic``, ``%config VoxtralMagics.display_mode = 'widget'``) against the local server started
with ``--answer-tokens 2000 --token-rate 1000``. Each cell is ``%%voxtral CLIP -o answer
--no-cache`` (so it really streams). After it, the magic's ``last_view`` says how many times the
widget's text changed (``.updates``) and what it last held (``.text``, and the HTML of its body).

updates/s = updates / streaming time (first token to end, ``_voxtral.latency_s - ttft_s``), the
median of ``repeat`` cells, for the default ``updates_per_second`` (10) and for 20. "exact": in
every cell the view's text equals ``-o answer``, the widget's last HTML shows exactly that text,
and the answer has 2,000 tokens.
"""

from __future__ import annotations

import argparse
import os
import time

from _common import Row, local_server, median, memo_clips, report, runs, temp_history

TARGET = 25.0


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    clip = memo_clips(1)[0]
    rows = []
    with temp_history() as work, local_server(answer_tokens=2000, token_rate=1000) as server:
        os.environ["IPYTHONDIR"] = str(work / "ipython")  # not the user's profile
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.utils.capture import capture_output
        from traitlets.config import Config

        from voxmagic.notebook.display import _pre

        os.environ["OPENROUTER_API_KEY"] = "bench"
        config = Config()
        config.HistoryManager.enabled = False  # keep IPython's input history in memory
        ip = InteractiveShell.instance(config=config)

        def run(cell: str) -> None:
            with capture_output():  # the widget's repr and the final text would fill the log
                result = ip.run_cell(cell)
            result.raise_error()

        run("%load_ext voxmagic")
        run(f"%config VoxtralMagics.display_mode = 'widget'\n%config VoxtralMagics.base_url = '{server.base_url}'")
        for rate in (None, 20):
            if rate is not None:
                run(f"%config VoxtralMagics.updates_per_second = {rate}")
            per_second, walls, exact = [], [], True
            for _ in range(args.repeat):
                started = time.perf_counter()
                run(f"%%voxtral {clip} -o answer --no-cache\nDescribe the audio.")
                walls.append(time.perf_counter() - started)
                view = ip.magics_manager.registry["VoxtralMagics"].session.last_view
                response, answer = ip.user_ns["_voxtral"], ip.user_ns["answer"]
                streaming = response.latency_s - response.ttft_s
                per_second.append(view.updates / streaming)
                exact &= (view.text == answer and view.body.value == _pre(answer)
                          and response.usage.completion_tokens == 2000)
                tokens = response.usage.completion_tokens
                print(f"updates_per_second={rate or 10}: {view.updates} updates in {streaming:.2f} s of "
                      f"streaming ({walls[-1]:.2f} s cell) -> {per_second[-1]:.1f}/s; {tokens} tokens "
                      f"({tokens / streaming:.0f}/s); text exact: {view.text == answer}")
            value = median(per_second)
            print(f"updates_per_second={rate or 10}: {runs(per_second, '{:.1f}')} /s, median {value:.1f}/s")
            setting = "default (10)" if rate is None else str(rate)
            rows.append(Row(f"widgets: updates/s streaming 2,000 tokens at 1,000/s, updates_per_second = "
                            f"{setting} (median of {args.repeat})", f"≤ {TARGET:g}/s, exact",
                            f"{value:.1f}/s, {'exact' if exact else 'NOT exact'}", value <= TARGET and exact))
    return rows


if __name__ == "__main__":
    report(main())
