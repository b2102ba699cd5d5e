// Study page: an anonymous rater id kept in localStorage, one case at a time, answers posted at once.
"use strict";
const $ = (id) => document.getElementById(id);
let rater = null, current = null, q2 = null;

function showError(m) { $("error").textContent = m; $("error").classList.remove("hidden"); }

async function api(url, opts) {
  const resp = await fetch(url, opts);
  const data = await resp.json().catch(() => ({ error: `the server answered ${resp.status}` }));
  if (!resp.ok || data.error) throw new Error(data.error || `the server answered ${resp.status}`);
  return data;
}

async function start() {
  // a returning rater: this browser's stored id, or ?rater=ID from the resume link
  const given = new URLSearchParams(location.search).get("rater");
  rater = given && /^r[0-9a-f]{16}$/.test(given) ? given : localStorage.getItem("deltav2a_rater");
  if (rater) {
    try { await api(`/api/study/raters/${rater}/next`); } catch (e) { rater = null; }
  }
  if (!rater) {
    rater = (await api("/api/study/raters", { method: "POST" })).rater;
    localStorage.setItem("deltav2a_rater", rater);
  }
  localStorage.setItem("deltav2a_rater", rater);
  $("who").textContent = `Your anonymous id: ${rater} (to continue elsewhere: ${location.origin}/?rater=${rater}).`;
  document.body.dataset.rater = rater;
  await next();
}

function update() { $("submit").disabled = !(document.querySelector("input[name=q1]:checked") && q2); }

async function next() {
  const data = await api(`/api/study/raters/${rater}/next`);
  if (data.done) {
    $("case").classList.add("hidden"); $("done").classList.remove("hidden");
    $("progress").textContent = `${data.answered} of ${data.total} cases answered`;
    document.body.dataset.done = "1";
    return;
  }
  current = data; q2 = null;
  for (const r of document.querySelectorAll("input[name=q1]")) r.checked = false;
  for (const side of ["left", "right"]) $("q2_" + side).classList.remove("selected");
  $("img_original").src = data.media["original.png"];
  $("img_edited").src = data.media["edited.png"];
  $("audio_original").src = data.media["original.wav"];
  $("audio_processed").src = data.media["processed.wav"];
  $("q2_left_img").src = data.q2_left;
  $("q2_right_img").src = data.q2_right;
  $("progress").textContent = `Case ${data.answered + 1} of ${data.total}`;
  $("case").classList.remove("hidden");
  document.body.dataset.case = data.case;
  update();
}

for (const side of ["left", "right"]) {
  $("q2_" + side).addEventListener("click", () => {
    q2 = side;
    $("q2_left").classList.toggle("selected", side === "left");
    $("q2_right").classList.toggle("selected", side === "right");
    update();
  });
}
$("q1").addEventListener("change", update);
$("submit").addEventListener("click", async () => {
  $("submit").disabled = true;
  try {
    const q1 = Number(document.querySelector("input[name=q1]:checked").value);
    await api("/api/study/answers", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ rater, case: current.case, q1, q2 }) });
    $("error").classList.add("hidden");
    await next();
  } catch (e) { showError(e.message); update(); }
});

start().catch((e) => showError(e.message));
