// Sends the form to /v1/analyze and shows the answers as a table. No libraries.
"use strict";

const TASK_NAMES = {
  msa: "Sentiment", mer: "Emotion", ovmer: "Emotion words",
  eri: "Reasons", mir: "Intent", erg: "Reply",
};

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function shownAnswer(task, entry) {
  const parsed = entry.parsed;
  if (parsed === null || parsed === undefined || parsed === "") return "(no clear answer)";
  if (Array.isArray(parsed)) return parsed.length ? parsed.join(", ") : "(no emotion words)";
  if (typeof parsed === "object") return parsed.reply || "(no reply)";
  return String(parsed);
}

function probabilityList(probabilities) {
  const list = element("div");
  Object.entries(probabilities)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .forEach(([label, p]) => {
      const row = element("div", null, "raw");
      const bar = element("span", null, "bar");
      bar.style.width = Math.max(2, Math.round(p * 120)) + "px";
      row.append(bar, `${label} ${(100 * p).toFixed(1)}%`);
      list.append(row);
    });
  return list;
}

function render(result) {
  const results = document.getElementById("results");
  results.replaceChildren();
  const flags = element("p",
    `audio: ${result.audio_present ? "yes" : "no"} · faces in ${result.faces_found ?? 0} of ${result.frames ?? 0} frames`,
    "flags");
  const table = element("table");
  table.id = "answers";
  for (const [task, entry] of Object.entries(result.answers || {})) {
    const row = table.insertRow();
    row.dataset.task = task;
    row.append(element("th", TASK_NAMES[task] || task));
    const cell = element("td");
    cell.append(element("div", shownAnswer(task, entry), "answer"));
    if (entry.probabilities) cell.append(probabilityList(entry.probabilities));
    if (entry.text && entry.text !== shownAnswer(task, entry)) cell.append(element("div", entry.text, "raw"));
    row.append(cell);
  }
  for (const [task, message] of Object.entries(result.errors || {})) {
    const row = table.insertRow();
    row.append(element("th", TASK_NAMES[task] || task), element("td", message, "raw"));
  }
  results.append(flags, table);
}

async function submit(event) {
  event.preventDefault();
  const form = event.target;
  const status = document.getElementById("status");
  const button = document.getElementById("submit");
  const data = new FormData();
  const clip = document.getElementById("clip").files[0];
  if (!clip) { status.textContent = "Choose a clip first."; return; }
  data.append("clip", clip);
  data.append("subtitle", document.getElementById("subtitle").value);
  data.append("decode", document.getElementById("decode").value);
  const tasks = [...form.querySelectorAll("input[name=task]:checked")].map((box) => box.value);
  data.append("tasks", tasks.join(","));
  status.className = "";
  status.textContent = "Analyzing…";
  button.disabled = true;
  try {
    const response = await fetch("/v1/analyze", { method: "POST", body: data });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      status.className = "error";
      status.textContent = body.error || body.detail || `The server answered ${response.status}.`;
      document.getElementById("results").replaceChildren();
      return;
    }
    status.textContent = `Answered ${Object.keys(body.answers || {}).length} task(s) for ${body.input}.`;
    render(body);
  } catch (error) {
    status.className = "error";
    status.textContent = "Could not reach the server: " + error;
  } finally {
    button.disabled = false;
  }
}

document.getElementById("analyze-form").addEventListener("submit", submit);
