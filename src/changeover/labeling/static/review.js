// The admin settles a flagged or disputed response: verdicts that supersede those in force, with a reason.
(function () {
  "use strict";
  function uuid() {
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  }
  async function post(form, verdicts) {
    const status = form.querySelector(".status");
    const reason = form.querySelector(".reason").value.trim();
    if (!reason) { status.textContent = "Say why first."; status.classList.add("error"); return; }
    const body = {client_id: uuid(), task: form.dataset.task, reason: reason, verdicts: verdicts};
    if (form.dataset.flag) body.flag = form.dataset.flag;
    status.textContent = "Saving…";
    const res = await fetch("/api/resolve", {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    if (res.ok) { window.location.reload(); return; }
    const err = await res.json().catch(() => ({error: res.statusText}));
    status.textContent = "Not saved: " + (err.error || res.status);
    status.classList.add("error");
  }
  document.querySelectorAll("form.settle").forEach((form) => {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const verdicts = {};
      form.querySelectorAll(".settle-dim").forEach((fs) => {
        const chosen = fs.querySelector("input:checked");
        if (chosen) verdicts[fs.dataset.dim] = Number(chosen.value);
      });
      if (!Object.keys(verdicts).length) {
        const status = form.querySelector(".status");
        status.textContent = "Choose a verdict (or dismiss the flag).";
        status.classList.add("error");
        return;
      }
      post(form, verdicts);
    });
    const dismiss = form.querySelector(".dismiss-btn");
    if (dismiss) dismiss.addEventListener("click", () => post(form, {}));
  });
})();
