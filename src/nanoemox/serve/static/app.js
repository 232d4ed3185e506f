// The Clip view: builds the task checkboxes from /v1/tasks, sends the form to /v1/analyze and shows
// the answers as a table; per person, also a table of the people and their boxes over the clip
// (people.js). No libraries.
"use strict";

// A task as its checkbox names it (the service's description, or the label of index.html).
function taskTitle(name) {
  const box = [...document.querySelectorAll("#tasks input[name=task]")].find((b) => b.value === name);
  return box ? box.parentElement.textContent.trim() : name;
}

// The task checkboxes of the Clip form, as the service lists its tasks: every one ticked but the
// replies (`reply: true`). A box the user changed before the list came keeps its state.
function buildTaskBoxes(tasks) {
  const fieldset = document.getElementById("tasks");
  const changed = new Map();
  for (const box of fieldset.querySelectorAll("input[name=task]")) {
    if (box.checked !== box.defaultChecked) changed.set(box.value, box.checked);
  }
  const labels = tasks.map((task) => {
    const box = document.createElement("input");
    Object.assign(box, { type: "checkbox", name: "task", value: task.name });
    box.defaultChecked = !task.reply;
    box.checked = changed.has(task.name) ? changed.get(task.name) : box.defaultChecked;
    box.dataset.timeline = String(Boolean(task.timeline));
    const label = document.createElement("label");
    label.append(box, ` ${task.description}`);
    return label;
  });
  fieldset.replaceChildren(fieldset.querySelector("legend"), ...labels);
}

async function loadTasks() {
  try {
    const response = await fetch("/v1/tasks");
    if (!response.ok) return;
    const body = await response.json();
    if (!Array.isArray(body.tasks) || !body.tasks.length) return;
    buildTaskBoxes(body.tasks);
  } catch (error) {
    // an older service does not list its tasks: the boxes of index.html stay
  }
}

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

// ---------------------------------------------------------------- per person

const clipPeople = new PeopleOverlay(document.getElementById("clip-player"), false);

function percentOf(p) {
  return typeof p === "number" ? `${Math.round(100 * p)}%` : "";
}

function sentimentText(msa) {
  return typeof msa.valence === "number" ? `${msa.sentiment} (valence ${msa.valence.toFixed(2)})` : msa.sentiment;
}

// One row per person: who (and whether they speak), how much of the speech is theirs, their answers.
function peopleTable(people) {
  const table = element("table");
  table.id = "people";
  const head = table.createTHead().insertRow();
  for (const title of ["person", "speaking share", "emotion", "sentiment", "words"]) head.append(element("th", title));
  const body = table.createTBody();
  for (const track of people.tracks || []) {
    const row = body.insertRow();
    row.dataset.person = track.id;
    row.append(element("th", `#${track.id + 1}${track.speaking ? " · speaking" : ""}`),
      element("td", percentOf(track.speaking_share)));
    const answers = track.answers || {};
    if (track.error) {
      const cell = element("td", track.error, "raw");
      cell.colSpan = 3;
      row.append(cell);
      continue;
    }
    row.append(
      element("td", answers.mer ? `${answers.mer.label} ${percentOf(answers.mer.confidence)}` : ""),
      element("td", answers.msa ? sentimentText(answers.msa) : ""),
      element("td", answers.ovmer ? (answers.ovmer.words || []).join(", ") : ""));
  }
  return table;
}

// Each track at `seconds`: the box of its frame nearest in time ([t, x, y, w, h] -> [x, y, w, h]).
function tracksAt(tracks, seconds) {
  return tracks.map((track) => {
    const nearest = nearestInTime(track.boxes || [], seconds, (box) => box[0]);
    return { ...(track.answers || {}), id: track.id, speaking: track.speaking, error: track.error,
      box: nearest ? nearest.slice(1) : null };
  });
}

// The clip plays above the answers with its people boxed; without per-person answers it stays hidden.
function showPeople(people, clip) {
  const player = document.getElementById("clip-player");
  const frame = document.getElementById("clip-frame");
  if (player.src) URL.revokeObjectURL(player.src);
  if (!people || !people.frame_size || !clip) {
    clipPeople.clear();
    player.removeAttribute("src");
    player.load();
    frame.hidden = true;
    return;
  }
  frame.hidden = false;
  player.src = URL.createObjectURL(clip);
  clipPeople.show(people.frame_size, (seconds) => tracksAt(people.tracks || [], seconds));
}

function render(result, clip) {
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
    row.append(element("th", taskTitle(task)));
    const cell = element("td");
    cell.append(element("div", shownAnswer(task, entry), "answer"));
    if (entry.probabilities) cell.append(probabilityList(entry.probabilities));
    if (entry.text && entry.text !== shownAnswer(task, entry)) cell.append(element("div", entry.text, "raw"));
    row.append(cell);
  }
  for (const [task, message] of Object.entries(result.errors || {})) {
    const row = table.insertRow();
    row.append(element("th", taskTitle(task)), element("td", message, "raw"));
  }
  results.append(flags, table);
  if (result.people) results.append(element("h2", "People"), peopleTable(result.people));
  showPeople(result.people, clip);
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
  const perPerson = document.getElementById("per-person").checked;
  // Per-person answers are ranked among the fixed labels (the service refuses generated ones).
  data.append("decode", perPerson ? "score" : document.getElementById("decode").value);
  const tasks = [...form.querySelectorAll("input[name=task]:checked")].map((box) => box.value);
  data.append("tasks", tasks.join(","));
  if (perPerson) data.append("per_person", "true");
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
      showPeople(null, null);
      return;
    }
    const people = body.people ? `, ${body.people.tracks.length} person(s) found` : "";
    status.textContent = `Answered ${Object.keys(body.answers || {}).length} task(s) for ${body.input}${people}.`;
    render(body, clip);
  } catch (error) {
    status.className = "error";
    status.textContent = "Could not reach the server: " + error;
  } finally {
    button.disabled = false;
  }
}

document.getElementById("analyze-form").addEventListener("submit", submit);
loadTasks();
// Per person, labels are always ranked among the fixed ones: the choice is shown, and locked.
document.getElementById("per-person").addEventListener("change", (event) => {
  const decode = document.getElementById("decode");
  if (event.target.checked) decode.value = "score";
  decode.disabled = event.target.checked;
});
