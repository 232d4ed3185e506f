// The Live view: the camera and the microphone streamed over a WebSocket to /v1/live
// (the protocol: docs/live.md), each answer shown as it arrives, the session's timeline
// offered for download at the end. Uses byId, svg, EMOTION_COLOURS, SPARE_COLOURS and
// DAMAGED_COLOUR from timeline.js, PeopleOverlay from people.js. No libraries.
"use strict";

const FRAME = 1;
const AUDIO = 2;
const STRIP = { width: 800, height: 60, seconds: 60 };
const MAX_FRAME_SIDE = 640; // frames are sent at most this large: the model sees 224-pixel images
const MAX_BUFFERED = 1 << 20; // a frame is skipped while this much is still waiting to be sent
const AUDIO_CHUNK_SECONDS = 0.1;
const AUDIO_RATES = [8000, 48000]; // the sample rates the service takes (its `limits.audio_rates`)
const AUDIO_CONSTRAINTS = { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false };
const VIDEO_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 480 } };

const live = {
  ws: null,
  stream: null, // the camera and microphone
  audio: null, // AudioContext
  frameTimer: null,
  canvas: document.createElement("canvas"),
  url: "", // the WebSocket's address
  ready: null, // the service's `ready` message
  asked: { video: false, audio: false }, // what the start message asked for (what the devices gave)
  t0: null, // performance.now() when the session started: media times count from here
  lastFrame: -1, // time of the last frame sent (times must not go back)
  encoding: false, // a frame is being encoded: the next waits, so frames leave in time order
  audioStart: null, // session time of the first audio sample sent
  samplesSent: 0,
  colours: {},
  bars: [], // [{ centre, rect }] of the strip, oldest first
  newest: -Infinity, // centre of the newest window on the strip: the right edge
  stopping: false, // Stop was pressed: no more media
  replyPending: false, // a reply was asked for and has not come yet
  ended: false,
};
window.liveAnswers = []; // the window messages of this session, in order (downloads are made from them)
// The preview is shown mirrored; the frames sent, and so the boxes of the answers, are not.
const livePeople = new PeopleOverlay(byId("live-preview"), true);

// The tasks to ask of each window: those ticked in the Clip form that a window can be asked (the
// service's `timeline` tasks), once the user changed one of their boxes; else null, and the service
// asks its own default (every window task ticked would ask for words too, which slows each answer).
function liveTasks() {
  const boxes = [...document.querySelectorAll("#tasks input[name=task][data-timeline=true]")];
  if (!boxes.some((box) => box.checked !== box.defaultChecked)) return null;
  const ticked = boxes.filter((box) => box.checked).map((box) => box.value);
  return ticked.length ? ticked : null;
}

function liveSay(text, isError) {
  const status = byId("live-status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

function pack(kind, seconds, payload) {
  const message = new Uint8Array(9 + payload.byteLength);
  const view = new DataView(message.buffer);
  view.setUint8(0, kind);
  view.setFloat64(1, seconds, true);
  message.set(new Uint8Array(payload), 9);
  return message.buffer;
}

function sessionSeconds() {
  return (performance.now() - live.t0) / 1000;
}

function liveColour(label) {
  return live.colours[label] || DAMAGED_COLOUR;
}

// ---------------------------------------------------------------- devices

// Which kinds of input exist (known before any permission is given; null when the browser will not say).
async function inputKinds() {
  if (!navigator.mediaDevices.enumerateDevices) return null;
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    return { video: devices.some((d) => d.kind === "videoinput"), audio: devices.some((d) => d.kind === "audioinput") };
  } catch (error) {
    return null;
  }
}

async function openDevices() {
  // Ask only for what exists: asking for a missing camera fails the microphone with it.
  const kinds = (await inputKinds()) || { video: true, audio: true };
  if (!kinds.video && !kinds.audio) {
    throw new DOMException("no camera and no microphone", "NotFoundError");
  }
  // Both if there are both; else whichever can be opened. A refusal is not retried with less.
  const attempts = [];
  if (kinds.video && kinds.audio) attempts.push({ video: VIDEO_CONSTRAINTS, audio: AUDIO_CONSTRAINTS });
  if (kinds.video) attempts.push({ video: VIDEO_CONSTRAINTS });
  if (kinds.audio) attempts.push({ audio: AUDIO_CONSTRAINTS });
  let last = null;
  for (const constraints of attempts) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (error) {
      last = error;
      if (error.name === "NotAllowedError" || error.name === "SecurityError") break;
    }
  }
  throw last;
}

function deviceProblem(error) {
  if (error.name === "NotAllowedError" || error.name === "SecurityError") {
    return "The browser was not allowed to use the camera or the microphone: allow them for this page, then press Start again.";
  }
  if (error.name === "NotFoundError" || error.name === "OverconstrainedError") {
    return "No camera and no microphone were found.";
  }
  if (error.name === "NotReadableError") return "The camera or the microphone is in use by another program.";
  return `The camera and the microphone could not be opened (${error.name}: ${error.message}).`;
}

function releaseDevices() {
  live.stopping = true;
  clearInterval(live.frameTimer);
  live.frameTimer = null;
  if (live.stream) live.stream.getTracks().forEach((track) => track.stop());
  live.stream = null;
  if (live.audio) live.audio.close().catch(() => {});
  live.audio = null;
  byId("live-preview").srcObject = null;
  livePeople.clear();
}

// ---------------------------------------------------------------- sending media

function sendFrame() {
  const preview = byId("live-preview");
  const ws = live.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || preview.readyState < 2 || !preview.videoWidth) return;
  if (ws.bufferedAmount > MAX_BUFFERED) return; // the network is behind: skip this frame
  if (live.encoding || live.stopping) return; // the previous frame is still being encoded: skip this one
  const seconds = sessionSeconds();
  const scale = Math.min(1, MAX_FRAME_SIDE / Math.max(preview.videoWidth, preview.videoHeight));
  live.canvas.width = Math.max(2, Math.round(preview.videoWidth * scale));
  live.canvas.height = Math.max(2, Math.round(preview.videoHeight * scale));
  live.canvas.getContext("2d").drawImage(preview, 0, 0, live.canvas.width, live.canvas.height);
  live.encoding = true;
  live.canvas.toBlob(async (blob) => {
    try {
      if (!blob || seconds <= live.lastFrame) return;
      const bytes = await blob.arrayBuffer();
      // The session may have stopped or closed while the frame was encoded.
      if (live.ws !== ws || ws.readyState !== WebSocket.OPEN || live.stopping) return;
      live.lastFrame = seconds;
      ws.send(pack(FRAME, seconds, bytes));
    } finally {
      live.encoding = false;
    }
  }, "image/jpeg", 0.85);
}

async function startAudio() {
  const context = live.audio;
  const source = context.createMediaStreamSource(live.stream);
  const node = new AudioWorkletNode(context, "live-capture",
    { processorOptions: { chunk: Math.round(context.sampleRate * AUDIO_CHUNK_SECONDS) } });
  node.port.onmessage = (event) => {
    const samples = event.data;
    const ws = live.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || live.ended || live.stopping) return;
    if (live.audioStart === null) live.audioStart = Math.max(0, sessionSeconds() - samples.length / context.sampleRate);
    // Later chunks follow by sample count: the audio clock, not the arrival of messages.
    const seconds = live.audioStart + live.samplesSent / context.sampleRate;
    live.samplesSent += samples.length;
    ws.send(pack(AUDIO, seconds, samples.buffer));
  };
  // The processor only runs when its output is pulled: route it to the speakers, silenced.
  const mute = context.createGain();
  mute.gain.value = 0;
  source.connect(node).connect(mute).connect(context.destination);
  await context.resume();
}

function startCapture() {
  live.t0 = performance.now();
  const rate = live.ready.frame_rate || 4;
  // What the service took; a `ready` that does not say is taken to agree with the start message.
  const video = live.ready.video === undefined ? live.asked.video : live.ready.video;
  const audio = live.ready.audio === undefined ? live.asked.audio : live.ready.audio;
  if (video) live.frameTimer = setInterval(sendFrame, 1000 / rate);
  if (audio) {
    startAudio().catch((error) => liveSay(`The microphone could not be read (${error.message}).`, true));
  }
}

// ---------------------------------------------------------------- showing answers

function drawLiveLegend(labels) {
  const legend = byId("live-legend");
  legend.replaceChildren();
  live.colours = {};
  labels.forEach((label, i) => {
    live.colours[label] = EMOTION_COLOURS[label] || SPARE_COLOURS[i % SPARE_COLOURS.length];
  });
  const item = (colour, text) => {
    const entry = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.setProperty("--swatch", colour);
    entry.append(swatch, text);
    legend.append(entry);
  };
  labels.forEach((label) => item(live.colours[label], label));
  item(DAMAGED_COLOUR, "no answer");
}

function showProbabilities(probabilities) {
  const list = byId("live-probs");
  list.replaceChildren();
  Object.entries(probabilities).sort((a, b) => b[1] - a[1]).forEach(([label, p]) => {
    const row = document.createElement("div");
    row.className = "row";
    row.dataset.label = label;
    row.style.setProperty("--swatch", liveColour(label));
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(2, Math.round(p * 120))}px`;
    row.append(bar, `${label} ${percent(p)}`);
    list.append(row);
  });
}

function drawBar(message) {
  const hop = live.ready.hop;
  const centre = (message.start + message.end) / 2;
  // As in the timeline: a window with an error, or without an emotion, is drawn grey and full height.
  const damaged = Boolean(message.error) || !message.mer;
  const height = damaged ? STRIP.height : Math.min(1, Math.max(0, message.mer.confidence)) * STRIP.height;
  const rect = svg("rect", { "data-index": message.index, y: (STRIP.height - height).toFixed(1), height: height.toFixed(1),
    fill: damaged ? DAMAGED_COLOUR : liveColour(message.mer.label) }, byId("live-strip"));
  if (damaged) rect.setAttribute("class", "damaged");
  const title = svg("title", {}, rect);
  title.textContent = `${message.start.toFixed(1)}–${message.end.toFixed(1)} s: ` +
    (damaged ? message.error || "no answer" : `${message.mer.label} ${percent(message.mer.confidence)}`);
  live.bars.push({ centre, rect });
  live.newest = Math.max(live.newest, centre);
  // The newest bar sits at the right edge; older ones move left; those past 60 s go, so the strip
  // holds at most 60 s / hop bars however long the session.
  const width = Math.max(1, (STRIP.width * hop) / STRIP.seconds);
  const oldest = live.newest - STRIP.seconds;
  for (const bar of live.bars.filter((b) => b.centre < oldest)) bar.rect.remove();
  live.bars = live.bars.filter((b) => b.centre >= oldest);
  for (const bar of live.bars) {
    const x = STRIP.width * (1 - (live.newest - bar.centre) / STRIP.seconds) - width;
    bar.rect.setAttribute("x", x.toFixed(1));
    bar.rect.setAttribute("width", width.toFixed(1));
  }
}

// Valence in [-1, 1]: a signed number and a bar from the middle, right for positive, left for negative.
function showValence(msa) {
  const valence = Math.min(1, Math.max(-1, msa.valence));
  byId("live-sentiment").textContent = msa.sentiment;
  byId("live-valence").textContent = `${valence >= 0 ? "+" : "-"}${Math.abs(valence).toFixed(2)}`;
  const fill = byId("live-valence-bar").firstElementChild;
  fill.style.left = `${50 + Math.min(0, valence) * 50}%`;
  fill.style.width = `${Math.abs(valence) * 50}%`;
  fill.style.background = EMOTION_COLOURS[valence >= 0 ? "positive" : "negative"];
  byId("live-valence-box").hidden = false;
}

function showWindow(message) {
  window.liveAnswers.push(message);
  const emotion = byId("live-emotion");
  if (message.mer) {
    emotion.textContent = message.mer.label;
    emotion.dataset.label = message.mer.label;
    emotion.style.setProperty("--swatch", liveColour(message.mer.label));
    showProbabilities(message.mer.probabilities);
  } else if (message.error) {
    emotion.textContent = "–";
    delete emotion.dataset.label;
    byId("live-probs").replaceChildren();
  }
  if (message.msa) showValence(message.msa);
  // The latest answer's people, whatever the preview's time; none when it has none.
  if (Array.isArray(message.people) && message.frame_size) {
    livePeople.show(message.frame_size, () => message.people);
  } else {
    livePeople.clear();
  }
  const face = byId("live-face");
  face.dataset.found = String(message.faces_found > 0);
  face.textContent = message.faces_found > 0 ? `face found (${message.faces_found} of ${message.frames} frames)` : "no face";
  const voice = byId("live-voice");
  voice.dataset.found = String(Boolean(message.audio_present));
  voice.textContent = message.audio_present ? "voice" : "no voice";
  byId("live-latency").textContent = typeof message.latency === "number" ? `latency ${message.latency.toFixed(2)} s` : "";
  const skipped = message.skipped_total || 0;
  byId("live-skipped").textContent = `${skipped} window${skipped === 1 ? "" : "s"} skipped`;
  drawBar(message);
  byId("live-reply").disabled = live.ended || live.replyPending;
  const when = `${message.start.toFixed(1)}–${message.end.toFixed(1)} s`;
  liveSay(message.error ? `Window ${when}: ${message.error}` : `Listening: window ${when}.`, Boolean(message.error));
}

// ---------------------------------------------------------------- the session's timeline

function offerDownloads() {
  if (!live.ready) return;
  // The service writes each row as `nanoemox timeline` writes timeline.csv (`csv` of each window).
  const table = live.ready.csv_header + window.liveAnswers.map((message) => message.csv).join("");
  const csv = byId("live-download-csv");
  const json = byId("live-download-json");
  for (const link of [csv, json]) if (link.href) URL.revokeObjectURL(link.href);
  csv.href = URL.createObjectURL(new Blob([table], { type: "text/csv" }));
  const { window: length, hop, tasks, labels } = live.ready;
  json.href = URL.createObjectURL(new Blob([JSON.stringify({ window: length, hop, tasks, labels, windows: window.liveAnswers }, null, 1)],
    { type: "application/json" }));
  csv.hidden = json.hidden = false;
}

// ---------------------------------------------------------------- the session

function handleMessage(message) {
  switch (message.type) {
    case "ready":
      live.ready = message;
      drawLiveLegend(message.labels || message.sentiments || []);
      if (live.stopping) break; // Stop was pressed while the service was getting ready
      startCapture();
      liveSay(`Listening: the first answer comes ${message.window} s after the start, then one every ${message.hop} s.`);
      break;
    case "window":
      showWindow(message);
      break;
    case "reply":
      live.replyPending = false;
      byId("live-reply-text").textContent = message.text || "(an empty reply)";
      byId("live-reply").disabled = live.ended;
      break;
    case "end":
      live.ended = true;
      releaseDevices(); // the service may end a session by itself (its time limit)
      liveSay(`Session over (${message.reason === "limit" ? "the session's time limit" : message.reason}): ` +
        `${message.windows} window${message.windows === 1 ? "" : "s"} answered, ${message.skipped} skipped, ` +
        `${Math.round(message.seconds || 0)} s.`);
      offerDownloads();
      break;
    case "error":
      liveSay(message.error, true);
      if (message.fatal === false) { // e.g. a reply asked for before the first answer: the session goes on
        live.replyPending = false;
        byId("live-reply").disabled = live.ended || !window.liveAnswers.length;
      } else {
        releaseDevices(); // the service closes after a fatal error
      }
      break;
    default:
      break;
  }
}

function sessionOver(event) {
  releaseDevices();
  if (!live.ended) {
    live.ended = true;
    const status = byId("live-status");
    if (!status.classList.contains("error")) {
      const why = `${event.code}${event.reason ? `: ${event.reason}` : ""}`;
      liveSay(live.ready ? `The connection to the service closed unexpectedly (${why}).`
        : `Could not reach the live service at ${live.url} (${why}).`, true);
    }
    if (window.liveAnswers.length) offerDownloads();
  }
  live.ws = null;
  byId("live-start").disabled = false;
  byId("live-stop").hidden = true;
  byId("live-stop").disabled = false;
  byId("live-reply").disabled = true;
}

// An AudioContext whose rate the service takes (the device's own rate when it can).
function audioContext() {
  const context = new AudioContext();
  if (context.sampleRate >= AUDIO_RATES[0] && context.sampleRate <= AUDIO_RATES[1]) return context;
  context.close().catch(() => {});
  return new AudioContext({ sampleRate: AUDIO_RATES[1] });
}

// Sets up the microphone's worklet; false (the audio tracks stopped) when this browser cannot.
async function openAudio() {
  try {
    live.audio = audioContext();
    await live.audio.audioWorklet.addModule("/static/live-audio.js");
    return true;
  } catch (error) {
    if (live.audio) live.audio.close().catch(() => {});
    live.audio = null;
    live.stream.getAudioTracks().forEach((track) => { track.stop(); live.stream.removeTrack(track); });
    return false;
  }
}

function resetDisplay() {
  window.liveAnswers = [];
  livePeople.clear();
  byId("live-strip").replaceChildren();
  byId("live-legend").replaceChildren();
  byId("live-probs").replaceChildren();
  const emotion = byId("live-emotion");
  emotion.textContent = "–";
  delete emotion.dataset.label;
  byId("live-sentiment").textContent = "";
  byId("live-valence").textContent = "";
  byId("live-valence-box").hidden = true;
  for (const [id, text] of [["live-face", "no face yet"], ["live-voice", "no voice yet"]]) {
    byId(id).dataset.found = "false";
    byId(id).textContent = text;
  }
  byId("live-latency").textContent = "";
  byId("live-skipped").textContent = "";
  byId("live-reply-text").textContent = "";
  byId("live-reply").disabled = true;
  byId("live-download-csv").hidden = byId("live-download-json").hidden = true;
}

async function startLive(event) {
  event.preventDefault();
  if (live.ws) return;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    liveSay("This page cannot use a camera: browsers allow it only on https:// pages and on localhost.", true);
    return;
  }
  const windowSeconds = Number(byId("live-window").value);
  const hop = Number(byId("live-hop").value);
  Object.assign(live, { ready: null, t0: null, lastFrame: -1, encoding: false, audioStart: null, samplesSent: 0,
    bars: [], newest: -Infinity, stopping: false, replyPending: false, ended: false });
  resetDisplay();
  byId("live-start").disabled = true;
  liveSay("Asking for the camera and the microphone…");
  try {
    live.stream = await openDevices();
  } catch (error) {
    liveSay(deviceProblem(error), true);
    byId("live-start").disabled = false;
    return;
  }
  const hasVideo = live.stream.getVideoTracks().length > 0;
  let hasAudio = live.stream.getAudioTracks().length > 0;
  let missing = hasVideo ? (hasAudio ? "" : " (no microphone: the face only)") : " (no camera: the voice only)";
  if (hasAudio && !(await openAudio())) {
    hasAudio = false;
    missing = " (this browser cannot read the microphone here: the face only)";
    if (!hasVideo) {
      releaseDevices();
      liveSay("This browser cannot read the microphone here (no AudioWorklet), and there is no camera.", true);
      byId("live-start").disabled = false;
      return;
    }
  }
  live.asked = { video: hasVideo, audio: hasAudio };
  byId("live-preview").srcObject = hasVideo ? live.stream : null;
  // Without audio the rate is unused; it must still be one the service takes.
  const sampleRate = hasAudio ? Math.round(live.audio.sampleRate) : 16000;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  live.url = `${scheme}//${location.host}/v1/live`;
  const ws = new WebSocket(live.url);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  const start = { type: "start", window: windowSeconds, hop, video: hasVideo, audio: hasAudio, sample_rate: sampleRate };
  const tasks = liveTasks();
  if (tasks) start.tasks = tasks;
  if (byId("live-per-person").checked) start.per_person = true;
  ws.onopen = () => ws.send(JSON.stringify(start));
  ws.onmessage = (message) => {
    if (typeof message.data === "string") handleMessage(JSON.parse(message.data));
  };
  ws.onclose = sessionOver;
  byId("live-stop").hidden = false;
  liveSay(`Connecting${missing}…`);
}

function stopLive() {
  const ws = live.ws;
  releaseDevices(); // the camera light goes off at once
  byId("live-stop").disabled = true;
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ type: "stop" }));
    liveSay("Stopping: waiting for the last answer…");
  } else if (ws) { // not connected yet: nothing to wait for
    live.ended = true;
    liveSay("Stopped before the session started.");
    ws.close();
  }
}

function askReply() {
  if (!live.ws || live.ws.readyState !== WebSocket.OPEN) return;
  live.replyPending = true;
  byId("live-reply").disabled = true;
  byId("live-reply-text").textContent = "";
  live.ws.send(JSON.stringify({ type: "reply" }));
}

byId("live-form").addEventListener("submit", startLive);
byId("live-stop").addEventListener("click", stopLive);
byId("live-reply").addEventListener("click", askReply);
