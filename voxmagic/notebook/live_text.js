// The front end of voxmagic.notebook.live_text.LiveText, an anywidget ES module: a status line
// above text that grows while an answer streams.
//
// Python numbers its updates (`n`: 1, 2, ...) and sends each as a custom message with any of
// `status` (the new status line), `add` (text to append) and `text` (the whole text, after a retry
// cleared it). `initialize` runs once per model, as it is created and before any message reaches
// it, so the model keeps the whole text in two local attributes (set, never saved: the kernel does
// not know them) for every view, however late it renders (a second view, a cell scrolled into
// view). A model that finds an update missing (created from the kernel's state: a page reload
// while a `--background` cell streams) asks once for the whole text. Wrapped at spaces like the
// static result that replaces the widget; the classes keep MathJax off the status line's dollars.

const STATUS = "color:var(--jp-ui-font-color2,#666);font-size:90%;white-space:pre-line;word-break:normal";
const TEXT = "white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;margin:0;" +
  "font-family:var(--jp-content-font-family,inherit)";

function initialize({ model }) {
  let last = 0, asked = false;
  model.on("msg:custom", (msg) => {
    if (typeof msg.status === "string") model.set("_live_status", msg.status);
    if (typeof msg.text === "string") model.set("_live_text", msg.text);
    else {
      if (msg.n !== last + 1 && !asked) {
        asked = true;
        model.send({ want: "all" });
      }
      if (msg.add) model.set("_live_text", (model.get("_live_text") || "") + msg.add);
    }
    last = msg.n;
  });
}

function render({ model, el }) {
  const root = document.createElement("div");
  const status = document.createElement("div");
  const text = document.createElement("pre");
  root.className = "voxmagic-live mathjax_ignore tex2jax_ignore";
  status.className = "vm-status";
  text.className = "vm-text";
  status.style.cssText = STATUS;
  text.style.cssText = TEXT;
  root.append(status, text);
  el.append(root);
  let shown = "";
  const update = () => {
    status.textContent = model.get("_live_status") || "";
    const now = model.get("_live_text") || "";
    if (now.length > shown.length && now.startsWith(shown)) text.append(now.slice(shown.length)); // a text node
    else if (now !== shown) text.textContent = now;
    shown = now;
  };
  update();
  model.on("msg:custom", update); // after initialize's listener: the model is up to date
  return () => {
    model.off("msg:custom", update);
    root.remove();
  };
}

export default { initialize, render };
