// The front end of voxmagic.notebook.recorder.Recorder, an anywidget ES module: a record/stop
// control that sends what the microphone hears to the kernel while it records.
//
// getUserMedia (no echo cancellation, noise suppression or gain control: the model should hear
// what was said, and gain control would pump the pauses the captions are cut at) feeds an
// AudioContext running at 16 kHz, the rate Voxtral hears, so the browser resamples. An
// AudioWorklet collects 2,048 samples (128 ms) at a time; each block goes to the kernel as 16-bit
// little-endian PCM in a binary buffer of a custom message {kind: "pcm", seq}. Around them:
// {kind: "start"}, {kind: "stop"} (after the worklet's last partial block), and
// {kind: "refused", why} when no microphone can be had — the line saying so is shown at once,
// without waiting for the kernel. The rest comes from Python's traits: `state`, `status`,
// `captions` (live, then the whole transcript) and `audio` (what the kernel received, as
// Ogg/Opus, for the player). The root's data-state says where the control is, for tests.

const RATE = 16000, BLOCK = 2048;
const WORKLET = `
class VoxmagicTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(${BLOCK});
    this.n = 0;
    this.port.onmessage = () => {
      this.port.postMessage({samples: this.block.slice(0, this.n), last: true});
      this.n = 0;
    };
  }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      this.block[this.n++] = channel[i];
      if (this.n === this.block.length) {
        this.port.postMessage({samples: this.block.slice(), last: false});
        this.n = 0;
      }
    }
    return true;
  }
}
registerProcessor("voxmagic-tap", VoxmagicTap);`;
const CONSTRAINTS = { audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } };

function make(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** Float samples in [-1, 1] as 16-bit PCM. */
function pcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
  }
  return out;
}

/** Why no microphone can be had, from what getUserMedia threw (or the page lacks). */
function why(error) {
  if (!window.isSecureContext) return "the page is not served over https (browsers give microphones only there and on localhost)";
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return "this front end gives no access to a microphone";
  if (error && error.name === "NotFoundError") return "the browser found no microphone";
  if (error && error.name === "NotAllowedError") return `the browser refused the microphone (${error.message || "permission denied"})`;
  return `the microphone did not start (${error && error.name ? `${error.name}: ${error.message}` : error})`;
}

/** Start recording: blocks of Int16 PCM go to `onBlock`; resolves to a function that stops
 * (after the last block) and releases the microphone. */
async function open(onBlock) {
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw null;
  const stream = await navigator.mediaDevices.getUserMedia(CONSTRAINTS);
  const context = new AudioContext({ sampleRate: RATE });
  try {
    const url = URL.createObjectURL(new Blob([WORKLET], { type: "text/javascript" }));
    await context.audioWorklet.addModule(url);
    URL.revokeObjectURL(url);
  } catch (error) {
    stream.getTracks().forEach((track) => track.stop());
    context.close();
    throw error;
  }
  const tap = new AudioWorkletNode(context, "voxmagic-tap");
  let finished = null;
  tap.port.onmessage = ({ data }) => {
    if (data.samples.length) onBlock(pcm16(data.samples));
    if (data.last && finished) finished();
  };
  context.createMediaStreamSource(stream).connect(tap);
  return () => new Promise((resolve) => {
    finished = () => {
      stream.getTracks().forEach((track) => track.stop());
      context.close();
      resolve();
    };
    tap.port.postMessage("flush");
  });
}

function clock(ms) {
  const s = ms / 1000;
  return `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
}

function render({ model, el }) {
  const root = make("div", "voxmagic-recorder mathjax_ignore tex2jax_ignore");
  const row = make("div", "vm-row");
  const button = make("button", "vm-record", "● record");
  const status = make("span", "vm-status");
  const captions = make("div", "vm-captions");
  const player = make("div", "vm-player");
  button.type = "button";
  row.append(button, status);
  root.append(row, captions, player);
  el.append(root);
  let local = "", began = 0, timer = 0, stop = null, seq = 0, url = "";

  const show = () => {
    const state = local || model.get("state");
    root.dataset.state = state;
    button.textContent = state === "recording" ? "■ stop" : "● record";
    button.disabled = !["waiting", "recording"].includes(state) || (local === "stopping");
    if (local === "recording") status.textContent = `recording ${clock(performance.now() - began)}`;
    else if (local) status.textContent = local === "starting" ? "asking for the microphone…" : "stopping…";
    else status.textContent = model.get("status") || (state === "waiting" ? "press ● to record, ■ to stop" : "");
    captions.textContent = model.get("captions") || "";
    const audio = model.get("audio");
    if (audio && audio.byteLength && !url) {
      const bytes = new Uint8Array(audio.buffer, audio.byteOffset, audio.byteLength);
      url = URL.createObjectURL(new Blob([bytes], { type: "audio/ogg" }));
      const element = make("audio");
      Object.assign(element, { controls: true, preload: "auto", src: url });
      player.append(element);
    }
  };

  async function finish() {
    if (local !== "recording") return;
    local = "stopping";
    clearInterval(timer);
    show();
    await stop();
    model.send({ kind: "stop", seq });
    local = "";
    show();
  }

  async function begin() {
    local = "starting";
    show();
    try {
      stop = await open((block) => model.send({ kind: "pcm", seq: seq++ }, undefined, [block.buffer]));
    } catch (error) {
      local = "";
      const line = (model.get("refused") || "{why}").replace("{why}", why(error));
      root.dataset.state = "failed";
      status.textContent = line;
      button.disabled = true;
      model.send({ kind: "refused", why: why(error) });
      return;
    }
    local = "recording";
    began = performance.now();
    root.dataset.began = String(began);
    model.send({ kind: "start" });
    timer = setInterval(() => {
      if (performance.now() - began >= 1000 * model.get("max_seconds")) finish();
      else show();
    }, 100);
    show();
  }

  button.addEventListener("click", () => (local === "recording" ? finish() : local ? null : begin()));
  const changed = () => (local === "" || local === "recording") && show();
  ["state", "status", "captions", "audio"].forEach((name) => model.on(`change:${name}`, changed));
  show();
  return () => {
    ["state", "status", "captions", "audio"].forEach((name) => model.off(`change:${name}`, changed));
    clearInterval(timer);
    if (local === "recording") finish();
    if (url) URL.revokeObjectURL(url);
    root.remove();
  };
}

export default { render };
