// The Live view: the camera and the microphone streamed over a WebSocket to /v1/live
// (the protocol: docs/live.md), each answer shown as it arrives, the session's timeline
// offered for download at the end. Uses byId, svg, EMOTION_COLOURS, SPARE_COLOURS and
// DAMAGED_COLOUR from timeline.js. No libraries.
"use strict";

const FRAME = 1;
const AUDIO = 2;
const STRIP = { width: 800, height: 60, seconds: 60 };
const MAX_FRAME_SIDE = 640; // frames are sent at most this large: the model sees 224-pixel images
const MAX_BUFFERED = 1 << 20; // a frame is skipped while this much is still waiting to be sent
const AUDIO_CHUNK_SECONDS = 0.1;
const AUDIO_CONSTRAINTS = { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false };
const VIDEO_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 480 } };

const live = {
  ws: null,
  stream: null, // the camera and microphone
  audio: null, // AudioContext
  frameTimer: null,
  canvas: document.createElement("canvas"),
  ready: null, // the service's `ready` message
  t0: null, // performance.now() when the session started: media times count from here
  lastFrame: -1, // time of the last frame sent (times must not go back)
  audioStart: null, // session time of the first audio sample sent
  samplesSent: 0,
  colours: {},
  bars: [], // [{ centre, rect }] of the strip, oldest first
  ended: false,
};
window.liveAnswers = []; // the window messages of this session, in order (downloads are made from them)

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

async function openDevices() {
  // Both if there are both; else whichever exists. A refusal is not retried with less.
  const attempts = [{ video: VIDEO_CONSTRAINTS, audio: AUDIO_CONSTRAINTS }, { video: VIDEO_CONSTRAINTS }, { audio: AUDIO_CONSTRAINTS }];
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
  clearInterval(live.frameTimer);
  live.frameTimer = null;
  if (live.stream) live.stream.getTracks().forEach((track) => track.stop());
  live.stream = null;
  if (live.audio) live.audio.close().catch(() => {});
  live.audio = null;
  byId("live-preview").srcObject = null;
}

// ---------------------------------------------------------------- sending media

function sendFrame() {
  const preview = byId("live-preview");
  const ws = live.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || preview.readyState < 2 || !preview.videoWidth) return;
  if (ws.bufferedAmount > MAX_BUFFERED) return; // the network is behind: skip this frame
  const seconds = sessionSeconds();
  const scale = Math.min(1, MAX_FRAME_SIDE / Math.max(preview.videoWidth, preview.videoHeight));
  live.canvas.width = Math.max(2, Math.round(preview.videoWidth * scale));
  live.canvas.height = Math.max(2, Math.round(preview.videoHeight * scale));
  live.canvas.getContext("2d").drawImage(preview, 0, 0, live.canvas.width, live.canvas.height);
  live.canvas.toBlob(async (blob) => {
    if (!blob || seconds <= live.lastFrame || live.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    live.lastFrame = seconds;
    ws.send(pack(FRAME, seconds, await blob.arrayBuffer()));
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
    if (!ws || ws.readyState !== WebSocket.OPEN || live.ended) return;
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
  if (live.ready.video) live.frameTimer = setInterval(sendFrame, 1000 / rate);
  if (live.ready.audio) {
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
  const height = message.mer ? Math.max(0.08, message.mer.confidence) * STRIP.height : STRIP.height * 0.3;
  const rect = svg("rect", { "data-index": message.index, y: STRIP.height - height, height,
    fill: message.mer ? liveColour(message.mer.label) : DAMAGED_COLOUR }, byId("live-strip"));
  const title = svg("title", {}, rect);
  title.textContent = `${message.start.toFixed(1)}–${message.end.toFixed(1)} s: ` +
    (message.mer ? `${message.mer.label} ${percent(message.mer.confidence)}` : message.error || "no answer");
  live.bars.push({ centre, rect });
  // The newest bar sits at the right edge; older ones move left; those past 60 s go.
  const width = Math.max(1, (STRIP.width * hop) / STRIP.seconds);
  while (live.bars.length && live.bars[0].centre < centre - STRIP.seconds) live.bars.shift().rect.remove();
  for (const bar of live.bars) {
    const x = STRIP.width * (1 - (centre - bar.centre) / STRIP.seconds) - width;
    bar.rect.setAttribute("x", x.toFixed(1));
    bar.rect.setAttribute("width", width.toFixed(1));
  }
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
  if (message.msa) {
    const valence = message.msa.valence;
    byId("live-sentiment").textContent = message.msa.sentiment;
    byId("live-valence").textContent = `valence ${valence >= 0 ? "+" : "−"}${Math.abs(valence).toFixed(2)}`;
  }
  const face = byId("live-face");
  face.dataset.found = String(message.faces_found > 0);
  face.textContent = message.faces_found > 0 ? `face found (${message.faces_found} of ${message.frames} frames)` : "no face";
  const voice = byId("live-voice");
  voice.dataset.found = String(Boolean(message.audio_present));
  voice.textContent = message.audio_present ? "voice" : "no voice";
  byId("live-latency").textContent = message.latency === null ? "" : `latency ${message.latency.toFixed(2)} s`;
  byId("live-skipped").textContent = `${message.skipped_total} window${message.skipped_total === 1 ? "" : "s"} skipped`;
  drawBar(message);
  byId("live-reply").disabled = live.ended;
  const when = `${message.start.toFixed(1)}–${message.end.toFixed(1)} s`;
  liveSay(message.error ? `Window ${when}: ${message.error}` : `Listening: window ${when}.`, Boolean(message.error));
}

// ---------------------------------------------------------------- the session's timeline

function csvValue(value) {
  const text = value === undefined || value === null ? "" : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function csvRow(message, labels) {
  // The columns and number formats of `nanoemox timeline`'s timeline.csv.
  const row = { start: message.start.toFixed(3), end: message.end.toFixed(3), faces_found: message.faces_found,
    audio_present: message.audio_present ? 1 : 0, error: message.error || "" };
  if (message.mer) {
    row.label = message.mer.label;
    row.confidence = message.mer.confidence.toFixed(4);
    for (const label of labels || []) row[`p_${label}`] = message.mer.probabilities[label].toFixed(4);
  }
  if (message.msa) {
    row.sentiment = message.msa.sentiment;
    row.valence = message.msa.valence.toFixed(4);
  }
  if (message.ovmer) row.words = message.ovmer.words.join("; ");
  return row;
}

function offerDownloads() {
  if (!live.ready) return;
  const columns = live.ready.columns;
  const lines = [columns.map(csvValue).join(",")];
  for (const message of window.liveAnswers) {
    const row = csvRow(message, live.ready.labels);
    lines.push(columns.map((column) => csvValue(row[column])).join(","));
  }
  const csv = byId("live-download-csv");
  const json = byId("live-download-json");
  for (const link of [csv, json]) if (link.href) URL.revokeObjectURL(link.href);
  csv.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
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
      startCapture();
      liveSay(`Listening: the first answer comes ${message.window} s after the start, then one every ${message.hop} s.`);
      break;
    case "window":
      showWindow(message);
      break;
    case "reply":
      byId("live-reply-text").textContent = message.text || "(an empty reply)";
      byId("live-reply").disabled = live.ended;
      break;
    case "end":
      live.ended = true;
      liveSay(`Session over (${message.reason}): ${message.windows} windows answered, ${message.skipped} skipped, ` +
        `${message.seconds.toFixed(0)} s.`);
      offerDownloads();
      break;
    case "error":
      liveSay(message.error, true);
      if (message.code === "no_window") byId("live-reply").disabled = false;
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
      liveSay(`The connection to the service closed (${event.code}${event.reason ? `: ${event.reason}` : ""}).`, true);
    }
    if (window.liveAnswers.length) offerDownloads();
  }
  live.ws = null;
  byId("live-start").disabled = false;
  byId("live-stop").hidden = true;
  byId("live-reply").disabled = true;
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
  Object.assign(live, { ready: null, t0: null, lastFrame: -1, audioStart: null, samplesSent: 0, bars: [], ended: false });
  window.liveAnswers = [];
  byId("live-strip").replaceChildren();
  byId("live-reply-text").textContent = "";
  byId("live-download-csv").hidden = byId("live-download-json").hidden = true;
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
  const hasAudio = live.stream.getAudioTracks().length > 0;
  byId("live-preview").srcObject = live.stream;
  let sampleRate = 16000;
  if (hasAudio) {
    live.audio = new AudioContext();
    sampleRate = Math.round(live.audio.sampleRate);
    await live.audio.audioWorklet.addModule("/static/live-audio.js");
  }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/v1/live`);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "start", window: windowSeconds, hop, tasks: ["mer", "msa"],
    video: hasVideo, audio: hasAudio, sample_rate: sampleRate }));
  ws.onmessage = (message) => handleMessage(JSON.parse(message.data));
  ws.onclose = sessionOver;
  byId("live-stop").hidden = false;
  liveSay("Connecting…");
}

function stopLive() {
  const ws = live.ws;
  releaseDevices(); // the camera light goes off at once
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ type: "stop" }));
    liveSay("Stopping: waiting for the last answer…");
  } else if (ws) {
    ws.close();
  }
}

function askReply() {
  if (!live.ws || live.ws.readyState !== WebSocket.OPEN) return;
  byId("live-reply").disabled = true;
  byId("live-reply-text").textContent = "";
  live.ws.send(JSON.stringify({ type: "reply" }));
}

byId("live-form").addEventListener("submit", startLive);
byId("live-stop").addEventListener("click", stopLive);
byId("live-reply").addEventListener("click", askReply);
