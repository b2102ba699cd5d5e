// The transfer page: fill the choices from /api/info, post the form, show the result.
"use strict";
const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.classList.remove("hidden");
}
function clearError() { $("error").classList.add("hidden"); $("error").textContent = ""; }

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text; select.appendChild(o);
}

async function waitForModel() {
  for (;;) {
    try {
      const h = await (await fetch("/api/health")).json();
      if (h.error) { showError("The model could not be loaded: " + h.error); $("status").textContent = ""; return null; }
      if (h.ready) break;
    } catch (e) { /* server still starting */ }
    await new Promise((r) => setTimeout(r, 300));
  }
  return (await fetch("/api/info")).json();
}

async function init() {
  const info = await waitForModel();
  if (!info) return;
  for (const [key, ex] of Object.entries(info.examples)) {
    option(ex.kind === "image" ? $("image_example") : $("audio_example"), key, ex.title);
  }
  for (const name of info.image_effects) {
    option($("effect"), name, info.trained_image_effects.includes(name) ? name : name + " (not seen in training)");
  }
  $("status").textContent = `model ready (${info.encoders.image} + ${info.encoders.audio}); uploads up to ` +
    `${info.limits.max_upload_mb.toFixed(0)} MB, clips up to ${info.limits.max_audio_seconds} s`;
  $("run").disabled = false;
}

$("intensity").addEventListener("input", () => { $("intensity_val").textContent = Number($("intensity").value).toFixed(2); });
for (const [input, radio] of [["image", "image_src"], ["edited", "edit_src"], ["audio", "audio_src"]]) {
  $(input).addEventListener("change", () => { document.querySelector(`input[name=${radio}][value=upload]`).checked = true; });
}

function radio(name) { return document.querySelector(`input[name=${name}]:checked`).value; }

function renderBars(label) {
  const entries = Object.entries(label).sort((a, b) => b[1] - a[1]).slice(0, 10);
  const max = Math.max(...entries.map((e) => e[1]));
  const uniform = 1 / Object.keys(label).length;
  const box = $("bars"); box.textContent = "";
  for (const [term, p] of entries) {
    const row = document.createElement("div"); row.className = "bar";
    row.innerHTML = `<span class="term"></span><span class="track"><span class="fill"></span>` +
      `<span class="uniform" title="uniform 1/K"></span></span><span class="val"></span>`;
    row.querySelector(".term").textContent = term;
    row.querySelector(".fill").style.width = (100 * p / max).toFixed(1) + "%";
    row.querySelector(".uniform").style.left = (100 * uniform / max).toFixed(1) + "%";
    row.querySelector(".val").textContent = p.toFixed(3);
    box.appendChild(row);
  }
}

function renderEffects(effects) {
  const box = $("effects"); box.textContent = "";
  if (!effects.length) { box.textContent = "No effect: the clip is left as it is."; return; }
  const table = document.createElement("table"); table.className = "fx";
  table.innerHTML = "<tr><th>effect</th><th>parameter</th><th>value</th></tr>";
  for (const e of effects) {
    for (const [k, v] of Object.entries(e.params)) {
      const tr = document.createElement("tr");
      for (const text of [e.effect, k, Number(v).toPrecision(3)]) {
        const td = document.createElement("td"); td.textContent = text; tr.appendChild(td);
      }
      table.appendChild(tr);
    }
  }
  box.appendChild(table);
}

$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearError();
  const fd = new FormData();
  if (radio("image_src") === "upload") {
    if (!$("image").files.length) { showError("Choose an image file to upload, or pick the example."); return; }
    fd.append("image", $("image").files[0]);
  } else fd.append("image_example", $("image_example").value);
  if (radio("edit_src") === "upload") {
    if (!$("edited").files.length) { showError("Choose the edited image to upload, or pick an effect."); return; }
    fd.append("edited", $("edited").files[0]);
  } else { fd.append("effect", $("effect").value); fd.append("intensity", $("intensity").value); }
  if (radio("audio_src") === "upload") {
    if (!$("audio").files.length) { showError("Choose an audio file to upload, or pick the example."); return; }
    fd.append("audio", $("audio").files[0]);
  } else fd.append("audio_example", $("audio_example").value);
  $("run").disabled = true;
  $("status").textContent = "transferring…";
  const t0 = performance.now();
  try {
    const resp = await fetch("/api/transfer", { method: "POST", body: fd });
    let data;
    try { data = await resp.json(); } catch (e) { data = { error: `the server answered ${resp.status}` }; }
    if (!resp.ok || data.error) { showError(data.error || `the server answered ${resp.status}`); $("status").textContent = ""; return; }
    const u = data.urls;
    $("img_original").src = u["original.png"];
    $("img_edited").src = u["edited.png"];
    $("player_original").src = u["original.wav"];
    $("player_processed").src = u["processed.wav"];
    $("spec_original").src = u["spec_original.png"];
    $("spec_processed").src = u["spec_processed.png"];
    $("dl_audio").href = u["processed.wav"];
    $("dl_sidecar").href = u["sidecar.json"];
    for (const k of ["original", "processed"]) {
      $("cap_" + k).textContent = `spectrogram: 0–${data.durations[k].toFixed(1)} s left to right, ` +
        `0–${data.nyquist_khz.toFixed(1)} kHz bottom to top`;
    }
    renderBars(data.style.label);
    const s = data.style;
    $("meters").textContent = `strength ${s.strength.toFixed(2)} · confidence ${s.confidence.toFixed(2)} · ` +
      `‖δ‖ ${s.delta_norm.toFixed(3)} · top: ${s.top.slice(0, 3).map((t) => t.term).join(", ")}`;
    renderEffects(data.effects);
    $("result").classList.remove("hidden");
    $("status").textContent = `done in ${((performance.now() - t0) / 1000).toFixed(2)} s ` +
      `(server ${data.seconds.toFixed(2)} s)`;
    document.body.dataset.resultId = data.id;
  } catch (e) {
    showError("The server could not be reached: " + e.message);
    $("status").textContent = "";
  } finally {
    $("run").disabled = false;
  }
});

init();
