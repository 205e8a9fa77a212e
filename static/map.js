// The live map: draws the world from the vendored TopoJSON, follows /ws
// (or /events when WebSockets are blocked) and resumes from the last id.
"use strict";

const TRAIL = 12;
const origin = location.protocol.startsWith("http") ? location.host : "localhost:8844";
const secure = location.protocol === "https:";
const $ = (id) => document.getElementById(id);
const svgNs = "http://www.w3.org/2000/svg";

const state = {
  lastId: null,
  trackers: new Map(),   // name -> { points: [[lon, lat]], event, seenAt }
  latest: null,
  caughtUp: 0,
  openedAt: 0,
  transport: "ws",
  wsDelivered: false,
  wsFailures: 0,
  backoff: 500,
};

const x = (lon) => lon + 180;
const y = (lat) => 90 - lat;

// --- drawing the world -----------------------------------------------------

function ringPath(ring) {
  let d = "";
  let prev = null;
  for (const [lon, lat] of ring) {
    // A jump across the antimeridian starts a new piece instead of a streak.
    const move = prev === null || Math.abs(lon - prev) > 180;
    d += (move ? "M" : "L") + x(lon).toFixed(2) + "," + y(lat).toFixed(2);
    prev = lon;
  }
  return d + "Z";
}

function drawLand(topology) {
  const world = topojson.feature(topology, topology.objects.countries);
  const land = $("land");
  for (const feature of world.features) {
    // Antarctica's outline runs along the map's bottom edge and the
    // antimeridian; drawn flat it is only streaks, so the ocean shows there.
    if (feature.id === "010") continue;
    const { type, coordinates } = feature.geometry || {};
    const polygons = type === "Polygon" ? [coordinates] : type === "MultiPolygon" ? coordinates : [];
    const path = document.createElementNS(svgNs, "path");
    path.setAttribute("d", polygons.flat().map(ringPath).join(""));
    land.appendChild(path);
  }
}

function drawGraticule() {
  let d = "";
  for (let lon = -150; lon <= 150; lon += 30) d += `M${x(lon)},0V180`;
  for (let lat = -60; lat <= 60; lat += 30) d += `M0,${y(lat)}H360`;
  const path = document.createElementNS(svgNs, "path");
  path.setAttribute("d", d);
  $("graticule").appendChild(path);
}

// --- what the page shows ---------------------------------------------------

function setStatus(kind, text) {
  const status = $("status");
  status.dataset.state = kind;
  status.textContent = text;
}

function showNotice(text) {
  const notice = $("notice");
  notice.textContent = text;
  notice.hidden = false;
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

function render() {
  const trails = $("trails");
  const markers = $("markers");
  trails.replaceChildren();
  markers.replaceChildren();
  const list = $("trackers");
  list.replaceChildren();
  const sorted = [...state.trackers.entries()].sort((a, b) => b[1].seenAt - a[1].seenAt);
  for (const [name, tracker] of sorted) {
    const [lon, lat] = tracker.points[tracker.points.length - 1];
    if (tracker.points.length > 1) {
      const trail = document.createElementNS(svgNs, "polyline");
      trail.setAttribute("class", "trail");
      trail.dataset.tracker = name;
      trail.setAttribute("points", tracker.points.map(([a, b]) => `${x(a)},${y(b)}`).join(" "));
      trails.appendChild(trail);
    }
    const marker = document.createElementNS(svgNs, "g");
    marker.setAttribute("class", "marker" + (state.latest && tracker.event.id === state.latest.id ? " latest" : ""));
    marker.dataset.tracker = name;
    const dot = document.createElementNS(svgNs, "circle");
    dot.setAttribute("cx", x(lon));
    dot.setAttribute("cy", y(lat));
    dot.setAttribute("r", 1.6);
    const label = document.createElementNS(svgNs, "text");
    label.setAttribute("x", x(lon) + 2.4);
    label.setAttribute("y", y(lat) + 1.4);
    label.textContent = name;
    marker.append(dot, label);
    markers.appendChild(marker);

    const item = document.createElement("li");
    item.dataset.tracker = name;
    item.innerHTML = `<span class="name"></span><span class="seen"></span><span class="where"></span>`;
    item.querySelector(".name").textContent = name;
    item.querySelector(".seen").textContent = ago(tracker.seenAt);
    item.querySelector(".seen").dataset.at = tracker.seenAt;
    item.querySelector(".where").textContent = `${lat.toFixed(5)}, ${lon.toFixed(5)}`;
    list.appendChild(item);
  }
  if (state.trackers.size === 0) {
    list.innerHTML = `<li class="empty">No positions yet.</li>`;
  }
  $("tracker-count").textContent = state.trackers.size;
  $("latest").textContent = state.latest ? JSON.stringify(state.latest, null, 2) : "–";
}

let renderQueued = false;
function scheduleRender() {
  if (!renderQueued) {
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; render(); });
  }
}

// --- events ----------------------------------------------------------------

function onEvent(event) {
  state.lastId = event.id;
  const name = event.tracker || "(unnamed)";
  const tracker = state.trackers.get(name) || { points: [] };
  tracker.points.push([event.longitude, event.latitude]);
  if (tracker.points.length > TRAIL) tracker.points.shift();
  tracker.event = event;
  tracker.seenAt = Date.parse(event.receivedAt);
  state.trackers.set(name, tracker);
  state.latest = event;
  if (tracker.seenAt < state.openedAt) {
    state.caughtUp += 1;
    setStatus("resumed", `resumed · ${state.caughtUp} caught up (${state.transport})`);
  }
  scheduleRender();
}

function onGap(gap) {
  if (gap.reason === "cursor-too-old") {
    showNotice("The server no longer has the positions after the last one shown (it may have restarted): " +
      "carrying on from the oldest it still keeps.");
  } else {
    showNotice(`This page fell behind and missed ${gap.missed ?? "some"} positions; catching up.`);
  }
}

function onFrame(text) {
  const message = JSON.parse(text);
  if (message.type === "gap") onGap(message); else onEvent(message);
}

function query() {
  return state.lastId ? "?after=" + encodeURIComponent(state.lastId) : "";
}

function opened() {
  state.openedAt = Date.now();
  state.caughtUp = 0;
  state.backoff = 500;
  setStatus(state.lastId ? "resumed" : "connected",
    (state.lastId ? "resumed" : "connected") + ` (${state.transport})`);
}

function connectWs() {
  const socket = new WebSocket((secure ? "wss://" : "ws://") + origin + "/ws" + query());
  socket.onopen = opened;
  socket.onmessage = (message) => { state.wsDelivered = true; onFrame(message.data); };
  socket.onclose = () => {
    // WebSockets that never deliver anything (refused, or cut at once by a
    // proxy) twice in a row: use Server-Sent Events instead.
    if (!state.wsDelivered && ++state.wsFailures >= 2) {
      connectSse();
      return;
    }
    setStatus("reconnecting", "reconnecting…");
    setTimeout(connectWs, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 5000);
  };
}

function connectSse() {
  state.transport = "sse";
  const source = new EventSource((secure ? "https://" : "http://") + origin + "/events" + query());
  source.onopen = opened;
  source.addEventListener("position", (message) => onFrame(message.data));
  source.addEventListener("gap", (message) => onGap(JSON.parse(message.data)));
  // EventSource reconnects by itself and sends Last-Event-ID.
  source.onerror = () => setStatus("reconnecting", "reconnecting… (sse)");
}

// Every event still in history, so a freshly opened map shows every
// tracker's latest position and trail; the stream then resumes after it.
async function loadHistory() {
  for (let page = 0; page < 20; page++) {
    const response = await fetch("/longlat/history?limit=1000" + (state.lastId ? "&after=" + state.lastId : ""));
    if (!response.ok) return;
    const { events } = await response.json();
    for (const event of events) onEvent(event);
    if (events.length < 1000) return;
  }
}

async function start() {
  for (const el of document.querySelectorAll(".host")) el.textContent = origin;
  drawGraticule();
  try {
    const response = await fetch("/assets/vendor/world-atlas/countries-110m.json");
    drawLand(await response.json());
  } catch (err) {
    showNotice("The world outline could not be loaded; positions still show.");
  }
  if (location.protocol.startsWith("http")) await loadHistory().catch(() => {});
  connectWs();
  setInterval(() => {
    for (const seen of document.querySelectorAll(".seen")) seen.textContent = ago(Number(seen.dataset.at));
  }, 1000);
}

start();
