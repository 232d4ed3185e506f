// The page's views (Clip, Timeline; Live is in live.js) and the timeline view: sends a video to /v1/timeline,
// reads the NDJSON answer as a stream and draws each window as soon as its line arrives.
// The chosen video plays from the local file (an object URL); nothing is downloaded back. No libraries.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
// Chart geometry in viewBox units; the segment strip's CSS margins (5%) match left/right.
const CHART = { width: 800, height: 260, left: 40, right: 760, top: 12, bottom: 220 };
const EMOTION_COLOURS = {
  anger: "#c0392b", disgust: "#7a8b2e", fear: "#7d4e9e", happy: "#e8a317",
  neutral: "#9aa5b1", sad: "#3a6ea5", surprise: "#1f9e89",
  negative: "#3a6ea5", positive: "#e8a317",
};
const SPARE_COLOURS = ["#d35400", "#16a085", "#8e44ad", "#2c3e50", "#c2185b", "#689f38", "#0277bd", "#795548"];
const DAMAGED_COLOUR = "#b9b9b9";
const MIN_LABEL_PIXELS = 56; // a segment narrower than this shows its label only as a tooltip

const timeline = {
  header: null, // the stream's header line
  stackTask: null, // whose probabilities are stacked (`stackedTask`), null until known
  labels: [],
  colours: {},
  layers: null, // SVG groups of the chart
  valence: "", // path data of the valence line so far
  penDown: false, // whether the next valence point continues the line (not after a damaged window)
  windows: 0,
  stopAt: null, // the player pauses here (end of a clicked segment)
  controller: null, // aborts the running request
  people: [], // [{ centre, people }] of the windows answered per person, in order
};
const timelinePeople = new PeopleOverlay(document.getElementById("timeline-player"), false);

function byId(id) {
  return document.getElementById(id);
}

function svg(tag, attributes, parent) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (parent) parent.append(node);
  return node;
}

// ---------------------------------------------------------------- views

const VIEWS = ["clip", "timeline", "live"];

function showView(name) {
  for (const view of VIEWS) {
    const tab = byId(`view-${view}`);
    const selected = view === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    byId(`${view}-view`).hidden = !selected;
  }
  history.replaceState(null, "", name === "clip" ? location.pathname : `#${name}`);
}

function setUpViews() {
  const tabs = VIEWS.map((view) => byId(`view-${view}`));
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => showView(tab.id.slice(5)));
    tab.addEventListener("keydown", (event) => { // arrow keys move between tabs (ARIA tabs pattern)
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      const next = tabs[(i + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      next.focus();
      showView(next.id.slice(5));
    });
  });
  const asked = location.hash.slice(1);
  if (asked !== "clip" && VIEWS.includes(asked)) showView(asked);
}

// ---------------------------------------------------------------- scales and labels

function x(seconds) {
  const duration = timeline.header.duration || 1;
  return CHART.left + (CHART.right - CHART.left) * Math.min(Math.max(seconds / duration, 0), 1);
}

function yProbability(p) {
  return CHART.bottom - (CHART.bottom - CHART.top) * p;
}

function yValence(v) {
  return CHART.bottom - (CHART.bottom - CHART.top) * (v + 1) / 2;
}

function longVideo() {
  return timeline.header.duration > 180;
}

function clock(seconds) {
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function shownTime(seconds) {
  return longVideo() ? clock(seconds) : `${Math.round(seconds * 10) / 10}`;
}

function span(start, end) {
  return longVideo() ? `${clock(start)}–${clock(end)}` : `${shownTime(start)}–${shownTime(end)} s`;
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

function tickStep(duration) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
  return steps.find((step) => duration / step <= 10) || 14400;
}

function colourOf(label) {
  return timeline.colours[label] || DAMAGED_COLOUR;
}

// ---------------------------------------------------------------- the chart

function drawFrame(header) {
  const chart = byId("timeline-chart");
  chart.replaceChildren();
  const grid = svg("g", { class: "grid" }, chart);
  for (const p of [0, 0.5, 1]) {
    svg("line", { x1: CHART.left, x2: CHART.right, y1: yProbability(p), y2: yProbability(p) }, grid);
    svg("text", { x: CHART.left - 6, y: yProbability(p) + 4, "text-anchor": "end" }, grid).textContent = p;
    const v = 2 * p - 1;
    svg("text", { x: CHART.right + 6, y: yValence(v) + 4, "text-anchor": "start", class: "valence-tick" }, grid)
      .textContent = v > 0 ? "+1" : v < 0 ? "−1" : "0";
  }
  const step = tickStep(header.duration);
  for (let t = 0; t <= header.duration + 1e-9; t += step) {
    svg("line", { x1: x(t), x2: x(t), y1: CHART.bottom, y2: CHART.bottom + 5 }, grid);
    svg("text", { x: x(t), y: CHART.bottom + 20, "text-anchor": "middle" }, grid).textContent = shownTime(t);
  }
  svg("text", { x: CHART.right, y: CHART.bottom + 38, "text-anchor": "end", class: "axis-title" }, grid)
    .textContent = longVideo() ? "time (m:ss)" : "time (s)";
  svg("text", { x: CHART.left, y: CHART.bottom + 38, "text-anchor": "start", class: "axis-title" }, grid)
    .textContent = "left: probability · right: valence";
  const windows = svg("g", { class: "windows" }, chart);
  const valence = svg("path", { class: "valence", d: "" }, chart);
  const playhead = svg("line", { class: "playhead", y1: CHART.top, y2: CHART.bottom, x1: CHART.left, x2: CHART.left }, chart);
  const hits = svg("g", { class: "hits" }, chart);
  timeline.layers = { windows, valence, playhead, hits };
  timeline.valence = "";
  timeline.penDown = false;
  timeline.windows = 0;
}

function drawLegend() {
  const legend = byId("timeline-legend");
  legend.replaceChildren();
  const item = (className, colour, text) => {
    const entry = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = className;
    swatch.style.setProperty("--swatch", colour);
    entry.append(swatch, text);
    legend.append(entry);
  };
  timeline.labels.forEach((label) => item("swatch", colourOf(label), label));
  if (timeline.header.tasks.includes("msa")) item("swatch line", "var(--ink)", "valence");
  item("swatch", DAMAGED_COLOUR, "damaged media");
}

// The stretch of the video a window stands for: hop-wide around its centre (first from 0, last to the end).
function cell(result) {
  const { hop, duration, window_count: count } = timeline.header;
  const centre = (result.start + result.end) / 2;
  const from = result.index === 0 ? 0 : Math.max(0, centre - hop / 2);
  const to = result.index === count - 1 ? duration : Math.min(duration, centre + hop / 2);
  return [x(from), x(to)];
}

function tooltip(result) {
  const answer = result[timeline.stackTask];
  const lines = [span(result.start, result.end)];
  if (result.error) lines.push(`damaged: ${result.error}`);
  if (answer && answer.label) lines.push(`${answer.label} ${percent(answer.confidence)}`);
  if (result.msa) lines.push(`${result.msa.sentiment}, valence ${result.msa.valence.toFixed(2)}`);
  if (result.text) lines.push(`“${result.text}”`);
  return lines.join("\n");
}

function drawWindow(result) {
  const { windows, valence, hits } = timeline.layers;
  const [a, b] = cell(result);
  const width = Math.max(b - a, 0.5);
  const group = svg("g", { class: "window" }, windows);
  const answer = result[timeline.stackTask];
  if (result.error || !answer) {
    svg("rect", { class: "damaged", x: a, y: CHART.top, width, height: CHART.bottom - CHART.top, fill: DAMAGED_COLOUR }, group);
  } else {
    let below = 0;
    for (const label of timeline.labels) {
      const p = answer.probabilities[label] || 0;
      svg("rect", { x: a, y: yProbability(below + p), width, height: yProbability(below) - yProbability(below + p),
        fill: colourOf(label) }, group);
      below += p;
    }
  }
  if (result.msa && !result.error) {
    const point = `${x((result.start + result.end) / 2).toFixed(1)},${yValence(result.msa.valence).toFixed(1)}`;
    timeline.valence += `${timeline.penDown ? " L" : " M"}${point}`;
    timeline.penDown = true;
    valence.setAttribute("d", timeline.valence);
  } else {
    timeline.penDown = false;
  }
  // One transparent target per window: its tooltip, a click to play from its start, and `data-index`.
  const hit = svg("rect", { class: "hit", x: a, y: CHART.top, width, height: CHART.bottom - CHART.top,
    "data-index": result.index, "data-start": result.start }, hits);
  svg("title", {}, hit).textContent = tooltip(result);
  hit.addEventListener("click", () => play(result.start, null));
  timeline.windows += 1;
}

function drawSegments(segments) {
  const strip = byId("timeline-segments");
  strip.replaceChildren();
  const duration = timeline.header.duration || 1;
  for (const segment of segments) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = segment.label === null ? "segment damaged" : "segment";
    button.dataset.start = segment.start;
    button.dataset.end = segment.end;
    button.dataset.label = segment.label === null ? "" : segment.label;
    button.style.left = `${(100 * segment.start) / duration}%`;
    button.style.width = `${(100 * (segment.end - segment.start)) / duration}%`;
    button.style.background = segment.label === null ? DAMAGED_COLOUR : colourOf(segment.label);
    const name = segment.label === null ? "damaged" : segment.label;
    const confidence = segment.confidence === null ? "" : ` ${percent(segment.confidence)}`;
    button.title = `${span(segment.start, segment.end)}: ${name}${confidence} (${segment.windows} windows)`;
    button.setAttribute("aria-label", `Play ${name}, ${span(segment.start, segment.end)}`);
    button.addEventListener("click", () => play(segment.start, segment.end));
    strip.append(button);
  }
  // Labels as text only where they fit (measured once the strip is laid out).
  for (const button of strip.children) {
    if (button.getBoundingClientRect().width >= MIN_LABEL_PIXELS) {
      button.textContent = button.dataset.label || "damaged";
    }
  }
}

// ---------------------------------------------------------------- the player

function play(start, end) {
  const player = byId("timeline-player");
  if (!player.src) return;
  timeline.stopAt = end;
  player.currentTime = start;
  // A browser may refuse to play without a user gesture; the seek still shows the moment.
  player.play().then(() => requestAnimationFrame(watchEnd)).catch(() => {});
}

// Checked every frame while a segment plays, so it stops at its end (timeupdate alone is ~4 Hz).
function watchEnd() {
  followPlayer();
  if (timeline.stopAt !== null && !byId("timeline-player").paused) requestAnimationFrame(watchEnd);
}

function followPlayer() {
  const player = byId("timeline-player");
  if (timeline.stopAt !== null && player.currentTime >= timeline.stopAt) {
    player.pause();
    timeline.stopAt = null;
  }
  if (timeline.layers && timeline.header) {
    const at = x(player.currentTime).toFixed(1);
    timeline.layers.playhead.setAttribute("x1", at);
    timeline.layers.playhead.setAttribute("x2", at);
  }
}

function chooseVideo() {
  const player = byId("timeline-player");
  const file = byId("timeline-video").files[0];
  if (player.src) URL.revokeObjectURL(player.src);
  timeline.stopAt = null;
  timeline.people = []; // they were of the previous video
  timelinePeople.clear();
  if (file) {
    player.src = URL.createObjectURL(file);
  } else {
    player.removeAttribute("src");
    player.load();
  }
}

// ---------------------------------------------------------------- the stream

function say(text, isError) {
  const status = byId("timeline-status");
  status.className = isError ? "error" : "";
  status.textContent = text;
}

// Calls onLine(object) for every complete line of an NDJSON body, as the bytes arrive.
async function readLines(response, onLine) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, cut).trim();
      buffer = buffer.slice(cut + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
  buffer += decoder.decode();
  if (buffer.trim()) onLine(JSON.parse(buffer));
}

// Which task's probabilities are stacked, and their labels: the header's `labels` are those of the
// emotion task (MER) when it ran; otherwise the first of the header's tasks whose answer has
// probabilities (the sentiment), its labels as the first such answer gives them. null: not yet known.
function stackedTask(header, result) {
  if (header.labels) return { task: "mer", labels: header.labels };
  const task = result && header.tasks.find((name) => result[name] && result[name].probabilities);
  return task ? { task, labels: Object.keys(result[task].probabilities) } : null;
}

function chooseStack(stack) {
  timeline.stackTask = stack.task;
  timeline.labels = stack.labels;
  timeline.colours = {};
  timeline.labels.forEach((label, i) => {
    timeline.colours[label] = EMOTION_COLOURS[label] || SPARE_COLOURS[i % SPARE_COLOURS.length];
  });
  drawLegend();
}

// The people of the window whose centre is nearest to `seconds` (none before the first such window).
function peopleAt(seconds) {
  const nearest = nearestInTime(timeline.people, seconds, (entry) => entry.centre);
  return nearest ? nearest.people : [];
}

function keepPeople(result) {
  if (!Array.isArray(result.people)) return;
  timeline.people.push({ centre: (result.start + result.end) / 2, people: result.people });
  if (timeline.header.frame_size && timeline.people.length === 1) {
    timelinePeople.show(timeline.header.frame_size, peopleAt);
  } else {
    timelinePeople.draw();
  }
}

// Handles one line of the stream; true once the run is over (end or error).
function handleLine(line) {
  const header = timeline.header;
  if (line.type === "header") {
    timeline.header = line;
    timeline.stackTask = null;
    timeline.labels = [];
    timeline.colours = {};
    drawFrame(line);
    const stack = stackedTask(line, null);
    if (stack) chooseStack(stack); else drawLegend();
    say(`${line.input}: ${line.window_count} windows of ${line.window} s every ${line.hop} s; computing window 1 of ${line.window_count}…`);
    return false;
  }
  if (line.type === "window") {
    if (timeline.stackTask === null) {
      const stack = stackedTask(header, line);
      if (stack) chooseStack(stack);
    }
    drawWindow(line);
    keepPeople(line);
    say(`${header.input}: window ${line.index + 1} of ${header.window_count}`);
    return false;
  }
  if (line.type === "end") {
    drawSegments(line.segments);
    const damaged = line.errors ? `, ${line.errors} with damaged media` : "";
    say(`${header.input}: ${header.window_count} windows${damaged}, ${line.segments.length} segments, ` +
        `in ${line.seconds.toFixed(1)} s. Click a segment to play it.`);
    return true;
  }
  if (line.type === "error") {
    say(line.error, true);
    return true;
  }
  return false;
}

function resetChart() {
  timeline.header = null;
  timeline.layers = null;
  timeline.people = [];
  timelinePeople.clear();
  byId("timeline-chart").replaceChildren();
  byId("timeline-segments").replaceChildren();
  byId("timeline-legend").replaceChildren();
}

async function startTimeline(event) {
  event.preventDefault();
  const file = byId("timeline-video").files[0];
  if (!file) { say("Choose a video first.", true); return; }
  const data = new FormData();
  data.append("clip", file);
  const subtitles = byId("timeline-subtitles").files[0];
  if (subtitles) data.append("subtitles", subtitles);
  data.append("window", byId("timeline-window").value);
  data.append("hop", byId("timeline-hop").value);
  if (byId("timeline-per-person").checked) data.append("per_person", "true");
  resetChart();
  const start = byId("timeline-start");
  const stop = byId("timeline-stop");
  start.disabled = true;
  stop.hidden = false;
  timeline.controller = new AbortController();
  say(`Sending ${file.name}…`);
  try {
    const response = await fetch("/v1/timeline", { method: "POST", body: data, signal: timeline.controller.signal });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      say(body.error || body.detail || `The server answered ${response.status}.`, true);
      return;
    }
    let over = false;
    await readLines(response, (line) => { over = handleLine(line) || over; });
    if (!over) say(`The answer stopped after ${timeline.windows} windows, before its end.`, true);
  } catch (error) {
    if (error.name === "AbortError") {
      say(`Stopped after ${timeline.windows} windows.`);
    } else {
      say(`Could not read the timeline: ${error.message || error}`, true);
    }
  } finally {
    start.disabled = false;
    stop.hidden = true;
    timeline.controller = null;
  }
}

setUpViews();
byId("timeline-form").addEventListener("submit", startTimeline);
byId("timeline-stop").addEventListener("click", () => timeline.controller && timeline.controller.abort());
byId("timeline-video").addEventListener("change", chooseVideo);
byId("timeline-player").addEventListener("timeupdate", followPlayer);
byId("timeline-player").addEventListener("seeked", followPlayer);
