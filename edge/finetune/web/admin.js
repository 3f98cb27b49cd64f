// maskwatch admin page: model and deployments, the collection of frames to
// label, labelling, and fine-tuning. Every request carries the admin token
// the operator typed (kept in this tab's sessionStorage only).
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("maskwatch-token") || "";
let classes = [];
let pending = [];
let current = null; // {meta, bitmap, faces: [{box, cls}], scale}
let drag = null;

function showError(msg) { $("error").textContent = msg || ""; }

// esc makes server text safe to put in HTML.
function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token }, cache: "no-store" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  if (r.status === 401) throw new Error("wrong or missing admin token");
  if (r.status === 403) throw new Error("admin endpoints are off on this device");
  const type = r.headers.get("Content-Type") || "";
  const v = type.includes("json") ? await r.json() : await r.blob();
  if (!r.ok) throw new Error((v && v.error) || r.status + " " + r.statusText);
  return v;
}

async function refreshModel() {
  const m = await api("GET", "/api/model");
  const run = m.running || {};
  $("model").textContent = `running ${run.version} (${run.backbone} ${run.precision}, ` +
    `from ${run.source}${run.signer ? ", signed by " + run.signer : ""})` +
    (m.previous ? `; previous ${m.previous.version}` : "");
  const rows = (m.history || []).slice(0, 6).map((h) =>
    `<tr><td>${new Date(h.time).toLocaleString()}</td><td>${esc(h.source)}</td>` +
    `<td>${esc(h.version)}</td><td class="${h.ok ? "ok" : "bad"}">` +
    `${h.ok ? "installed" : "refused " + esc(h.code) + " at " + esc(h.stage)}</td></tr>`);
  $("history").innerHTML = rows.join("");
}

async function refreshCollect() {
  const c = await api("GET", "/api/collect");
  if (!c.enabled) {
    $("collect").textContent = "collection is off: start maskwatch with --collect DIR";
    return;
  }
  classes = c.classes || [];
  pending = c.pending || [];
  const s = c.stats;
  $("collect").textContent = `${s.pending} frames to label, ${s.labelled} labelled; ` +
    `${(s.bytes / 1e6).toFixed(1)} of ${(s.quota / 1e6).toFixed(0)} MB` +
    (s.full ? " (full)" : "");
  if (!current && pending.length > 0) await show(pending[0]);
  if (pending.length === 0) {
    current = null;
    $("label-info").textContent = "no frame waiting";
    $("faces").innerHTML = "";
  }
}

async function show(meta) {
  const blob = await api("GET", `/api/collect/${meta.id}/image`);
  const bitmap = await createImageBitmap(blob);
  const scale = Math.min(1, 900 / bitmap.width);
  current = { meta, bitmap, scale,
    faces: (meta.faces || []).map((f) => ({ box: f.box.slice(), cls: f.class,
      score: f.score })) };
  const c = $("picture");
  c.width = Math.round(bitmap.width * scale);
  c.height = Math.round(bitmap.height * scale);
  $("label-info").textContent = `${meta.id}: ${meta.reason === "operator" ?
    "flagged as a mistake" : "the model was unsure"} (model ${meta.model})`;
  draw();
}

function draw() {
  if (!current) return;
  const c = $("picture"), g = c.getContext("2d"), s = current.scale;
  g.drawImage(current.bitmap, 0, 0, c.width, c.height);
  current.faces.forEach((f, i) => {
    g.strokeStyle = f.cls < 0 ? "#888" : (f.cls === 0 ? "#00c000" : "#e00000");
    g.lineWidth = 2;
    g.strokeRect(f.box[0] * s, f.box[1] * s, (f.box[2] - f.box[0]) * s,
      (f.box[3] - f.box[1]) * s);
    g.fillStyle = g.strokeStyle;
    g.fillText(String(i + 1), f.box[0] * s + 3, f.box[1] * s + 12);
  });
  if (drag && drag.to) {
    g.strokeStyle = "#ff0";
    g.strokeRect(drag.from[0], drag.from[1], drag.to[0] - drag.from[0],
      drag.to[1] - drag.from[1]);
  }
  const rows = current.faces.map((f, i) => {
    const opts = classes.map((n, k) =>
      `<option value="${k}"${k === f.cls ? " selected" : ""}>${esc(n)}</option>`).join("") +
      `<option value="-1"${f.cls < 0 ? " selected" : ""}>not a face</option>`;
    const score = f.score !== undefined ? f.score.toFixed(2) : "drawn";
    return `<tr><td>${i + 1}</td><td>${score}</td>` +
      `<td><select data-face="${i}">${opts}</select></td></tr>`;
  });
  $("faces").innerHTML = rows.join("");
  document.querySelectorAll("#faces select").forEach((el) => {
    el.addEventListener("change", () => {
      current.faces[Number(el.dataset.face)].cls = Number(el.value);
      draw();
    });
  });
}

function point(ev) {
  const r = $("picture").getBoundingClientRect();
  const k = $("picture").width / r.width;
  return [(ev.clientX - r.left) * k, (ev.clientY - r.top) * k];
}

$("picture").addEventListener("mousedown", (ev) => {
  if (current) drag = { from: point(ev) };
});
$("picture").addEventListener("mousemove", (ev) => {
  if (drag) { drag.to = point(ev); draw(); }
});
$("picture").addEventListener("mouseup", (ev) => {
  if (!drag) return;
  const to = point(ev), s = current.scale;
  const box = [Math.min(drag.from[0], to[0]) / s, Math.min(drag.from[1], to[1]) / s,
    Math.max(drag.from[0], to[0]) / s, Math.max(drag.from[1], to[1]) / s];
  drag = null;
  if (box[2] - box[0] >= 4 && box[3] - box[1] >= 4) {
    current.faces.push({ box, cls: classes.length > 1 ? 1 : 0 });
  }
  draw();
});

async function act(f) {
  try {
    showError("");
    await f();
  } catch (e) {
    showError(e.message);
  }
}

$("use-token").addEventListener("click", () => act(async () => {
  token = $("token").value.trim();
  sessionStorage.setItem("maskwatch-token", token);
  await refreshAll();
}));
$("flag").addEventListener("click", () => act(async () => {
  const r = await api("POST", "/api/collect/flag");
  $("collect").textContent = "kept frame " + r.id;
  current = null;
  await refreshCollect();
}));
$("save").addEventListener("click", () => act(async () => {
  if (!current) return;
  const faces = current.faces.filter((f) => f.cls >= 0)
    .map((f) => ({ box: f.box, class: f.cls }));
  await api("POST", `/api/collect/${current.meta.id}`, { faces });
  current = null;
  await refreshCollect();
}));
$("discard").addEventListener("click", () => act(async () => {
  if (!current) return;
  await api("DELETE", `/api/collect/${current.meta.id}`);
  current = null;
  await refreshCollect();
}));
$("next").addEventListener("click", () => act(async () => {
  if (pending.length === 0) return;
  const i = current ? pending.findIndex((p) => p.id === current.meta.id) : -1;
  await show(pending[(i + 1) % pending.length]);
}));
$("start").addEventListener("click", () => act(async () => {
  const data = $("data").value.split("\n").map((s) => s.trim()).filter(Boolean);
  await api("POST", "/api/finetune", { layers: $("layers").value,
    epochs: Number($("epochs").value), data });
  await refreshFinetune();
}));
$("stop").addEventListener("click", () => act(async () => {
  await api("DELETE", "/api/finetune");
  await refreshFinetune();
}));

async function refreshFinetune() {
  const f = await api("GET", "/api/finetune");
  if (f.available === false) {
    $("progress").textContent = "fine-tuning needs --collect DIR and --model PATH";
    return;
  }
  const p = f.progress || {};
  if (f.running) {
    const epoch = p.phase === "training" ? ` epoch ${p.epoch}/${p.epochs}` : "";
    $("bar").max = p.total || 1;
    $("bar").value = p.done || 0;
    $("progress").textContent = `${p.phase || "starting"}${epoch}: ${p.done || 0}/` +
      `${p.total || 0}` + (p.loss ? `, loss ${p.loss.toFixed(3)}` : "") +
      (p.eta_s ? `, about ${Math.ceil(p.eta_s)} s left` : "") +
      (p.baseline_accuracy !== undefined ? `; held-out accuracy ${
        p.baseline_accuracy.toFixed(3)} -> best ${(p.best_accuracy || 0).toFixed(3)}` : "");
  } else {
    $("progress").textContent = f.ended ? "last run ended " +
      new Date(f.ended).toLocaleString() : "";
  }
  const r = f.result;
  let html = "";
  if (r) {
    html += `held-out accuracy ${r.baseline.accuracy.toFixed(3)} → ` +
      `${r.candidate ? r.candidate.accuracy.toFixed(3) : "–"}: ${esc(r.reason)}`;
  }
  if (f.deployed) {
    html += f.deployed.ok ? ` <span class="ok">deployed ${esc(f.deployed.version)}</span>` :
      ` <span class="bad">refused at ${esc(f.deployed.stage)}</span>`;
  }
  if (f.error) html += ` <span class="bad">${esc(f.error)}</span>`;
  $("result").innerHTML = html;
}

async function refreshAll() {
  await refreshModel();
  await refreshCollect();
  await refreshFinetune();
}

$("token").value = token;
if (token) act(refreshAll);
setInterval(() => { if (token) act(refreshFinetune); }, 2000);
setInterval(() => { if (token) act(refreshCollect); }, 10000);
