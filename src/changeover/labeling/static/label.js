// Keyboard-first labelling: 1/0 judge the active dimension, s skips, f flags, u corrects the last label.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("task-data").textContent);
  const dims = Array.from(document.querySelectorAll(".dim"));
  const status = document.getElementById("status");
  const values = {};
  let active = 0;
  let sending = false;

  function show(message, isError) {
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  function activate(index) {
    active = Math.max(0, Math.min(index, dims.length - 1));
    dims.forEach((el, i) => el.classList.toggle("active", i === active));
  }

  function mark(index, value) {
    const el = dims[index];
    values[el.dataset.dim] = value;
    el.querySelectorAll(".choice").forEach((b) => b.classList.toggle("selected", Number(b.dataset.value) === value));
  }

  async function send(statusValue) {
    if (sending) return;
    sending = true;
    show(statusValue === "label" ? "Saving…" : (statusValue === "skip" ? "Skipping…" : "Flagging…"));
    const body = {client_id: data.client_id, task: data.task, status: statusValue};
    if (statusValue === "label") body.verdicts = values;
    if (data.corrects) body.corrects = data.corrects;
    const note = document.getElementById("note");
    if (note && note.value.trim()) body.note = note.value.trim();
    try {
      const res = await fetch("/api/labels", {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
      if (res.ok) { window.location.assign("/"); return; }
      const err = await res.json().catch(() => ({error: res.statusText}));
      show("Not saved: " + (err.error || res.status), true);
    } catch (e) {
      show("Not saved (network): " + e + ". Press the key again to retry.", true);
    }
    sending = false;
  }

  function judge(index, value) {
    mark(index, value);
    const next = dims.findIndex((el) => !(el.dataset.dim in values));
    if (next === -1) { send("label"); } else { activate(next); }
  }

  dims.forEach((el, i) => {
    el.addEventListener("click", () => activate(i));
    el.querySelectorAll(".choice").forEach((b) =>
      b.addEventListener("click", (ev) => { ev.stopPropagation(); activate(i); judge(i, Number(b.dataset.value)); }));
    if (el.dataset.previous !== undefined) {
      el.querySelectorAll(".choice").forEach((b) =>
        b.classList.toggle("selected", b.dataset.value === el.dataset.previous));
    }
  });
  // On the correction page "skip" keeps the earlier verdict: nothing is sent (a skip would withdraw it).
  function skip() { if (data.corrects) { window.location.assign("/"); } else { send("skip"); } }
  document.getElementById("skip").addEventListener("click", skip);
  document.getElementById("flag").addEventListener("click", () => send("flag"));

  // r shows the exact text of the response instead of its rendering (and back)
  function toggleRaw() {
    const raw = document.getElementById("response-raw");
    const rendered = document.getElementById("response-text");
    if (!raw || !rendered) return;
    raw.hidden = !raw.hidden;
    rendered.hidden = !raw.hidden;
    document.getElementById("raw-toggle").classList.toggle("on", !raw.hidden);
  }
  // g shows the dimensions' guidelines; c opens or closes the conversation context
  function toggleGuidelines() {
    const panel = document.getElementById("guidelines");
    if (panel) panel.hidden = !panel.hidden;
  }
  function toggleContext() {
    const context = document.getElementById("context");
    if (context) context.open = !context.open;
  }
  const guidelinesToggle = document.getElementById("guidelines-toggle");
  if (guidelinesToggle) guidelinesToggle.addEventListener("click", toggleGuidelines);
  const rawToggle = document.getElementById("raw-toggle");
  if (rawToggle) rawToggle.addEventListener("click", toggleRaw);

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target && ev.target.id === "note") {          // typing a note is not a verdict
      if (ev.key === "Escape") ev.target.blur();
      return;
    }
    const key = ev.key.toLowerCase();
    if (key === "1" || key === "0") { judge(active, Number(key)); }
    else if (key === "s") { skip(); }
    else if (key === "f") { send("flag"); }
    else if (key === "u") { window.location.assign("/correct"); }
    else if (key === "r") { toggleRaw(); }
    else if (key === "h") { window.location.assign("/history"); }
    else if (key === "g") { toggleGuidelines(); }
    else if (key === "c") { toggleContext(); }
    else if (key === "arrowdown" || key === "j") { activate(active + 1); }
    else if (key === "arrowup" || key === "k") { activate(active - 1); }
    else { return; }
    ev.preventDefault();
  });
})();
