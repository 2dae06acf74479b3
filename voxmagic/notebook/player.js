// The front end of voxmagic.notebook.player.TranscriptPlayer, an anywidget ES module.
//
// One <audio> per source (its bytes arrive once, as a binary buffer) above a table of segments.
// A click on a row (or Enter / Space on a focused row) plays the row's source from the row's
// start and pauses it at the row's end, the row highlighted meanwhile; the end is checked on
// every `timeupdate` and every 20 ms, so playback stops within a few hundredths of a second.
// Another row switches; the playing row again pauses. The trait `playing` tells Python which
// row plays (-1: none). A source's audio may begin later than its file does (a moment of a long
// recording: `start` seconds in), while rows keep the file's times: the offset is taken off.

/** m:ss (h:mm:ss from an hour), with tenths when there are some, as the Python side shows it. */
export function clock(seconds) {
  const tenths = Math.max(0, Math.round(seconds * 10));
  const s = Math.floor(tenths / 10), tenth = tenths % 10;
  const ss = String(s % 60).padStart(2, "0") + (tenth ? `.${tenth}` : "");
  const m = Math.floor(s / 60) % 60, h = Math.floor(s / 3600);
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function make(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** A URL for a source's audio: bytes (a DataView from the kernel) become a blob URL. */
function audioUrl(audio, mime) {
  if (!audio) return null;
  if (typeof audio === "string") return audio; // already a (data) URL
  const bytes = ArrayBuffer.isView(audio)
    ? new Uint8Array(audio.buffer, audio.byteOffset, audio.byteLength)
    : audio;
  return URL.createObjectURL(new Blob([bytes], { type: mime || "audio/ogg" }));
}

function table(sources, rows, audios) {
  const multi = sources.length > 1, speakers = rows.some((r) => r.speaker);
  const names = ["time", ...(multi ? ["source"] : []), ...(speakers ? ["speaker"] : []), "text"];
  const tbl = make("table"), head = make("tr"), body = make("tbody");
  names.forEach((n) => head.append(make("th", `vm-${n}`, n)));
  tbl.append(make("thead"), body);
  tbl.tHead.append(head);
  const trs = rows.map((row, i) => {
    const tr = make("tr");
    tr.dataset.row = String(i);
    const span = `${clock(row.start)}–${clock(row.end)}`;
    if (audios[row.source]) {
      tr.tabIndex = 0;
      tr.title = `play ${span}`;
    } else tr.classList.add("vm-silent");
    const cells = { time: span, source: sources[row.source]?.label, speaker: row.speaker, text: row.text };
    names.forEach((n) => tr.append(make("td", `vm-${n}`, cells[n] || "")));
    body.append(tr);
    return tr;
  });
  return { tbl, body, trs };
}

function build(model, el) {
  const sources = model.get("sources") || [], rows = model.get("rows") || [];
  const root = make("div", "voxmagic-player mathjax_ignore tex2jax_ignore");
  const urls = [];
  const audios = sources.map((src) => {
    const line = make("div", "vm-source");
    line.append(make("span", "vm-label", src.label));
    root.append(line);
    const url = audioUrl(src.audio, src.mime);
    if (!url) {
      line.append(make("span", "vm-note", src.note || "no audio"));
      return null;
    }
    if (url.startsWith("blob:")) urls.push(url);
    const audio = make("audio");
    Object.assign(audio, { controls: true, preload: "auto", src: url });
    line.append(audio);
    return audio;
  });
  const { tbl, body, trs } = table(sources, rows, audios);
  root.append(tbl);
  el.append(root);

  let current = -1, timer = 0;
  const audioOf = (i) => audios[rows[i].source];
  const at = (i) => Number(sources[rows[i].source]?.start) || 0; // where the source's audio begins
  const tell = (i) => { model.set("playing", i); model.save_changes(); };

  function finish(pause, sync = true) {
    if (current < 0) return;
    const a = audioOf(current);
    trs[current].classList.remove("vm-playing");
    trs[current].removeAttribute("aria-current");
    clearInterval(timer);
    current = -1;
    if (pause && !a.paused) a.pause();
    if (sync) tell(-1);
  }
  function check() {
    if (current < 0) return;
    const a = audioOf(current);
    if (a.currentTime + at(current) >= rows[current].end || a.ended) {
      a.pause();
      finish(false);
    }
  }
  function play(i) {
    const a = audioOf(i);
    if (!a) return;
    if (i === current && !a.paused) return finish(true); // the playing row again: pause
    finish(current >= 0 && audioOf(current) !== a, false);
    current = i;
    trs[i].classList.add("vm-playing");
    trs[i].setAttribute("aria-current", "true");
    a.currentTime = Math.max(0, rows[i].start - at(i));
    a.play()?.catch(() => current === i && finish(false)); // refused (autoplay policy) or no audio
    timer = setInterval(check, 20);
    tell(i);
  }

  audios.forEach((a) => {
    if (!a) return;
    a.addEventListener("timeupdate", check);
    a.addEventListener("ended", check);
    // Paused from its own controls: the row is over. (A pause we caused while switching rows
    // arrives after play() was called again, when `paused` is false: ignored.)
    a.addEventListener("pause", () => a.paused && current >= 0 && audioOf(current) === a && finish(false));
    // Moved outside the row with its controls: just play on, no longer bound to the row.
    a.addEventListener("seeked", () => {
      const r = current >= 0 && audioOf(current) === a ? rows[current] : null;
      const t = r && a.currentTime + at(current);
      if (r && (t < r.start - 0.25 || t > r.end)) finish(false);
    });
  });
  body.addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-row]");
    if (tr && !String(window.getSelection() || "")) play(Number(tr.dataset.row)); // selecting text is not a click
  });
  body.addEventListener("keydown", (e) => {
    const tr = e.target.closest("tr[data-row]");
    if (!tr) return;
    if (e.key === "Enter" || e.key === " ") play(Number(tr.dataset.row));
    else if (e.key === "ArrowDown") tr.nextElementSibling?.focus();
    else if (e.key === "ArrowUp") tr.previousElementSibling?.focus();
    else return;
    e.preventDefault();
    e.stopPropagation(); // not JupyterLab's: Enter would edit the cell, arrows move between cells
  });

  return () => {
    finish(true, false);
    audios.forEach((a) => a && a.pause());
    urls.forEach((u) => URL.revokeObjectURL(u));
    root.remove();
  };
}

function render({ model, el }) {
  let cleanup = build(model, el);
  const rebuild = () => {
    cleanup();
    cleanup = build(model, el);
  };
  model.on("change:sources", rebuild);
  model.on("change:rows", rebuild);
  return () => {
    model.off("change:sources", rebuild);
    model.off("change:rows", rebuild);
    cleanup();
  };
}

export default { render };
