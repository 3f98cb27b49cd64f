// maskwatch page: polls /api/status every second, lists /api/events, and
// reloads the stream after the source comes back.
"use strict";

const $ = (id) => document.getElementById(id);
let hadSignal = true;

function text(id, v) { $(id).textContent = v; }

async function poll() {
  try {
    const r = await fetch("/api/status", { cache: "no-store" });
    const s = await r.json();
    const src = s.source || {};
    text("source", src.spec + (src.signal ? "" : " (no signal)"));
    const m = s.model || {};
    text("model", [m.engine, m.backbone, m.precision, m.version].filter(Boolean).join(" "));
    const c = s.counts || {};
    text("now-proper", c.now_proper ?? 0);
    text("now-notproper", c.now_not_proper ?? 0);
    text("seen-proper", c.entered_proper ?? 0);
    text("seen-notproper", c.entered_not_proper ?? 0);
    text("frames", s.frames ?? 0);
    text("fps", (s.fps ?? 0).toFixed(1));
    const l = s.latency_ms || {};
    text("latency", `${(l.p50 ?? 0).toFixed(0)} / ${(l.p99 ?? 0).toFixed(0)} ms`);
    $("nosignal").classList.toggle("on", !src.signal);
    if (src.signal && !hadSignal) {
      $("stream").src = "/stream.mjpg?" + Date.now();
    }
    hadSignal = !!src.signal;
  } catch (e) {
    $("nosignal").classList.add("on");
    hadSignal = false;
  }
}

function listen() {
  const es = new EventSource("/api/events");
  const add = (ev) => {
    const e = JSON.parse(ev.data);
    const li = document.createElement("li");
    li.className = e.proper ? "proper" : "notproper";
    const t = new Date(e.time).toLocaleTimeString();
    li.textContent = `${t} ${e.type} #${e.track} ${e.label} ${e.score.toFixed(2)}`;
    const list = $("events");
    list.prepend(li);
    while (list.children.length > 50) list.lastChild.remove();
  };
  for (const type of ["enter", "change", "leave"]) es.addEventListener(type, add);
}

poll();
setInterval(poll, 1000);
listen();
