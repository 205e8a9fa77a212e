// The live map: Leaflet over a built-in world outline (and the operator's
// basemap and raster tiles, when configured), every tracker's trail from history, then
// live positions from /ws (or /events when WebSockets are blocked),
// resuming from the last id after a cut; and the zones, with trackers
// entering and leaving them as it happens, from a second stream.
import { drawTrail } from "./map/trails.js";
import { placeLabels } from "./map/labels.js";
import { applyFilter, refreshAges, renderList } from "./map/list.js";
import { Replay } from "./map/replay.js";
import { loadOutline, loadSettings } from "./map/basemap.js";
import { Stream, origin, transport } from "./map/stream.js";
import { Zones } from "./map/zones.js";

/** Fixes kept per tracker for its trail and replay. */
const MAX_POINTS = 5000;
/** Positions without a tracker kept on the map, newest last. */
const MAX_UNTRACKED = 1000;
/** Pages of history read at start (1000 events each). */
const HISTORY_PAGES = 20;
/** How often the zones are read again, in ms (they change rarely). */
const ZONES_EVERY_MS = 30_000;

const $ = (id) => document.getElementById(id);

const state = {
  lastId: null,
  trackers: new Map(),   // name -> { name, colour, points: [{lat, lon, at}], event, seenAt, marker, label, trail }
  untracked: [],         // circle markers of positions without a tracker
  dirty: new Set(),      // trackers whose trail needs redrawing
  added: false,          // a tracker appeared since the last render
  latest: null,
  caughtUp: 0,
  openedAt: 0,
  everLive: false,       // a connection opened before: the next one resumes
  resuming: false,
  following: null,
  viewTouched: false,    // the viewer moved the map: stop fitting it for them
};

// --- the map ---------------------------------------------------------------

const map = L.map("map", { worldCopyJump: true, minZoom: 1, maxZoom: 19 }).setView([20, 0], 2);
window.longlatMap = map; // for the browser console, and the browser tests
map.createPane("outline").style.zIndex = 150;
map.createPane("basemap").style.zIndex = 250; // over --map-tiles (200): the operator's own detail wins
const outline = L.layerGroup().addTo(map);
const trails = L.layerGroup().addTo(map);
const untracked = L.layerGroup().addTo(map);
const clusters = L.markerClusterGroup({ maxClusterRadius: 40, showCoverageOnHover: false }).addTo(map);
L.control.scale({ imperial: false }).addTo(map);
// Leaflet follows window resizes only after a pause; the layout (a phone
// turned, the list growing) changes the map's size at other times too.
new ResizeObserver(() => map.invalidateSize()).observe(map.getContainer());
const replay = new Replay(map);
const zones = new Zones(map, $("zones"), $("crossings"));

for (const kind of ["pointerdown", "wheel", "keydown"]) {
  map.getContainer().addEventListener(kind, () => { state.viewTouched = true; }, { passive: true });
}
map.on("dragstart", () => unfollow());
const relabel = () => placeLabels(map, state.trackers.values(), state.following);
map.on("zoomend moveend", relabel);
clusters.on("animationend spiderfied unspiderfied", relabel);

// Each new tracker's hue is the golden angle on from the last one's, so
// trackers that appear together (bus-42, bus-43) get far-apart colours.
function colourOf(index) {
  return `hsl(${Math.round((index * 137.508 + 200) % 360)} 80% 62%)`;
}

function addMarker(tracker, at) {
  const body = document.createElement("div");
  body.className = "tracker-body";
  body.dataset.tracker = tracker.name;
  const dot = document.createElement("span");
  dot.className = "dot";
  dot.style.background = tracker.colour;
  tracker.label = document.createElement("span");
  tracker.label.className = "label";
  tracker.label.textContent = tracker.name;
  body.append(dot, tracker.label);
  const icon = L.divIcon({ className: "tracker", html: body, iconSize: [14, 14] });
  tracker.marker = L.marker(at, { icon, title: tracker.name, riseOnHover: true });
  tracker.marker.on("click", () => pick(tracker.name));
  clusters.addLayer(tracker.marker);
}

function addUntracked(event) {
  const dot = L.circleMarker([event.latitude, event.longitude], { className: "untracked", radius: 4, weight: 1 })
    .bindTooltip(`no tracker · ${new Date(event.receivedAt).toLocaleString()}`);
  dot.addTo(untracked);
  state.untracked.push(dot);
  if (state.untracked.length > MAX_UNTRACKED) untracked.removeLayer(state.untracked.shift());
}

function fitAll() {
  const points = [...state.trackers.values()].map((t) => t.marker.getLatLng());
  if (points.length === 0) points.push(...state.untracked.map((dot) => dot.getLatLng()));
  const bounds = points.length ? L.latLngBounds(points) : zones.bounds();
  if (bounds) map.fitBounds(bounds, { padding: [48, 48], maxZoom: 15, animate: false });
}

// --- following -------------------------------------------------------------

/** Zooms to tracker `name`, follows it as it moves, and offers its replay. */
function pick(name) {
  const tracker = state.trackers.get(name);
  if (!tracker) return;
  state.following = name;
  replay.select(tracker);
  const chip = $("following");
  chip.querySelector("b").textContent = name;
  chip.hidden = false;
  map.setView(tracker.marker.getLatLng(), Math.max(map.getZoom(), 16));
  scheduleRender();
}

function unfollow() {
  if (!state.following) return;
  state.following = null;
  $("following").hidden = true;
  scheduleRender();
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

function render() {
  for (const tracker of state.dirty) drawTrail(trails, tracker);
  state.dirty.clear();
  for (const tracker of state.trackers.values()) {
    tracker.label.parentElement.classList.toggle("latest", tracker.event === state.latest);
  }
  renderList(state.trackers, state.following, pick);
  $("untracked-count").hidden = state.untracked.length === 0;
  $("untracked-count").textContent = `+${state.untracked.length} without a tracker`;
  $("latest").textContent = state.latest ? JSON.stringify(state.latest, null, 2) : "–";
  const followed = state.trackers.get(state.following);
  if (followed) map.panTo(followed.marker.getLatLng(), { animate: false });
  else if (state.added && !state.viewTouched) fitAll();
  state.added = false;
  relabel();
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
  state.latest = event;
  const at = Date.parse(event.receivedAt);
  if (event.tracker) {
    let tracker = state.trackers.get(event.tracker);
    // Placed by when it was recorded: a phone may send fixes it buffered
    // offline after newer ones.
    const fix = { lat: event.latitude, lon: event.longitude, at: Date.parse(event.recordedAt ?? event.receivedAt) };
    if (!tracker) {
      tracker = { name: event.tracker, colour: colourOf(state.trackers.size), points: [] };
      state.trackers.set(tracker.name, tracker);
      addMarker(tracker, [fix.lat, fix.lon]);
      state.added = true;
    }
    // A late fix joins the trail where it belongs, and the marker stays on
    // the newest one.
    let place = tracker.points.length;
    while (place > 0 && tracker.points[place - 1].at > fix.at) place--;
    tracker.points.splice(place, 0, fix);
    if (place === tracker.points.length - 1) {
      tracker.marker.setLatLng([fix.lat, fix.lon]);
      tracker.event = event;
    }
    if (tracker.points.length > MAX_POINTS) tracker.points.shift();
    tracker.seenAt = Math.max(tracker.seenAt ?? 0, at);
    state.dirty.add(tracker);
  } else {
    addUntracked(event);
    if (state.trackers.size === 0) state.added = true;
  }
  if (state.resuming && at < state.openedAt) {
    state.caughtUp += 1;
    setStatus("resumed", `resumed · ${state.caughtUp} caught up (${transport.kind})`);
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

// "resumed" only when this page had a live connection before and asked to
// carry on after its last event; a fresh page that read history is live.
function opened() {
  state.openedAt = Date.now();
  state.caughtUp = 0;
  state.resuming = state.everLive && state.lastId !== null;
  state.everLive = true;
  setStatus(state.resuming ? "resumed" : "live", `${state.resuming ? "resumed" : "live"} (${transport.kind})`);
}

const positions = new Stream({
  filter: "",
  sseEvents: ["position"],
  cursor: () => state.lastId,
  onOpen: opened,
  onEvent,
  onGap,
  onCut: () => setStatus("reconnecting", transport.kind === "sse" ? "reconnecting… (sse)" : "reconnecting…"),
});

// A map with nothing on it yet shows where the zones are.
function refreshZones() {
  zones.refresh()
    .then(() => { if (!state.viewTouched && state.trackers.size === 0 && state.untracked.length === 0) fitAll(); })
    .catch((err) => console.error("zones:", err));
}

// Zone events only, from where the history read at start ended. The
// crossings of that last position come right after it, yet happened
// before the page opened: the list starts after them.
const zoneEvents = new Stream({
  filter: "zone=*",
  sseEvents: ["enter", "leave"],
  lastId: null,
  historyEnd: null,
  cursor: () => zoneEvents.lastId,
  onOpen: refreshZones,
  onEvent: (event) => {
    zoneEvents.lastId = event.id;
    if (event.position.id !== zoneEvents.historyEnd) zones.crossed(event);
  },
  onGap: (gap) => zones.missed(gap),
  onCut: () => {},
});

// Every event still in history, so a freshly opened map shows every
// tracker's latest position and trail; the stream then resumes after it.
async function loadHistory() {
  let after = null;
  for (let page = 0; page < HISTORY_PAGES; page++) {
    const response = await fetch("/longlat/history?limit=1000" + (after ? "&after=" + encodeURIComponent(after) : ""));
    if (!response.ok) return;
    const { events, next } = await response.json();
    for (const event of events) onEvent(event);
    if (events.length < 1000 || !next) return;
    after = next;
  }
}

async function start() {
  for (const el of document.querySelectorAll(".host")) el.textContent = origin;
  $("filter").addEventListener("input", applyFilter);
  $("unfollow").addEventListener("click", unfollow);
  loadSettings(map, outline).catch((err) => {
    console.error("map settings:", err);
    showNotice("The map's tiles or basemap could not be loaded; showing the outline.");
  });
  loadOutline(outline).catch(() => showNotice("The world outline could not be loaded; positions still show."));
  if (location.protocol.startsWith("http")) await loadHistory().catch((err) => console.error("history:", err));
  positions.open();
  zoneEvents.lastId = zoneEvents.historyEnd = state.lastId;
  zoneEvents.open();
  setInterval(refreshAges, 1000);
  setInterval(refreshZones, ZONES_EVERY_MS);
}

start();
