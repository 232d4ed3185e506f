// Per-person answers drawn over a video: one box per person (class person-box) with its label
// (class person-label), scaled from the frames the service saw (`frame_size`) to the video as the
// page shows it, letterboxing of object-fit: contain included. Used by all three views. No libraries.
"use strict";

const PERSON_COLOURS = ["#e8a317", "#1f9e89", "#c2185b", "#0277bd", "#689f38", "#7d4e9e", "#d35400", "#2c3e50"];

// "#1 happy 80%", "#2 positive", "#1 (no answer: …)"; ids count from 0, people from 1.
function personLabel(person) {
  const parts = [`#${person.id + 1}`];
  if (person.error) {
    parts.push("(no answer)");
  } else if (person.mer) {
    parts.push(`${person.mer.label} ${Math.round(100 * person.mer.confidence)}%`);
  } else if (person.msa) {
    parts.push(person.msa.sentiment);
  } else if (person.ovmer && person.ovmer.words && person.ovmer.words.length) {
    parts.push(person.ovmer.words.join(", "));
  }
  if (person.speaking) parts.push("· speaking");
  return parts.join(" ");
}

// Where the picture lies inside the element (object-fit: contain centres it, bars around it).
function pictureRect(video, frameSize) {
  const [frameWidth, frameHeight] = frameSize;
  const naturalWidth = video.videoWidth || frameWidth;
  const naturalHeight = video.videoHeight || frameHeight;
  const width = video.clientWidth;
  const height = video.clientHeight;
  const scale = Math.min(width / naturalWidth, height / naturalHeight);
  const shownWidth = naturalWidth * scale;
  const shownHeight = naturalHeight * scale;
  return { left: (width - shownWidth) / 2, top: (height - shownHeight) / 2, width: shownWidth, height: shownHeight };
}

// The boxes over one <video>, which must sit alone in a positioned wrapper (.video-frame).
class PeopleOverlay {
  // mirrored: the video is shown flipped left to right (the Live view's preview), the frames were not.
  constructor(video, mirrored) {
    this.video = video;
    this.mirrored = Boolean(mirrored);
    this.frameSize = null;
    this.peopleAt = null; // seconds of the video -> the people to draw then
    this.layer = document.createElement("div");
    this.layer.className = "person-layer";
    this.layer.setAttribute("aria-hidden", "true"); // the Clip view's table says the same in words
    video.after(this.layer);
    const draw = () => this.draw();
    for (const name of ["timeupdate", "seeked", "loadedmetadata", "resize", "emptied"]) video.addEventListener(name, draw);
    video.addEventListener("play", () => this.follow());
    new ResizeObserver(draw).observe(video);
  }

  // Shows the people that peopleAt(currentTime) gives, on frames of frameSize [W, H] pixels.
  show(frameSize, peopleAt) {
    this.frameSize = frameSize;
    this.peopleAt = peopleAt;
    this.draw();
  }

  clear() {
    this.frameSize = null;
    this.peopleAt = null;
    this.layer.replaceChildren();
  }

  // Every frame while the video plays (timeupdate alone is about 4 a second).
  follow() {
    this.draw();
    if (!this.video.paused && !this.video.ended) requestAnimationFrame(() => this.follow());
  }

  draw() {
    if (!this.peopleAt || !this.frameSize || !this.video.clientWidth) {
      this.layer.replaceChildren();
      return;
    }
    const picture = pictureRect(this.video, this.frameSize);
    const sx = picture.width / this.frameSize[0];
    const sy = picture.height / this.frameSize[1];
    // The boxes already drawn are moved, not made again: this runs every frame while the video plays.
    const old = new Map([...this.layer.children].map((box) => [box.dataset.person, box]));
    const boxes = [];
    for (const person of this.peopleAt(this.video.currentTime || 0)) {
      if (!person.box) continue; // not seen in this stretch
      const [x, y, w, h] = person.box;
      const left = this.mirrored ? picture.left + picture.width - (x + w) * sx : picture.left + x * sx;
      const box = old.get(String(person.id)) || personBox(person.id);
      box.classList.toggle("speaking", Boolean(person.speaking));
      Object.assign(box.style, { left: `${left}px`, top: `${picture.top + y * sy}px`,
        width: `${w * sx}px`, height: `${h * sy}px` });
      const label = personLabel(person);
      if (box.firstChild.textContent !== label) box.firstChild.textContent = label;
      boxes.push(box);
    }
    if (boxes.length !== this.layer.children.length || boxes.some((box, i) => this.layer.children[i] !== box)) {
      this.layer.replaceChildren(...boxes);
    }
  }
}

function personBox(id) {
  const box = document.createElement("div");
  box.className = "person-box";
  box.dataset.person = id;
  box.style.setProperty("--person", PERSON_COLOURS[id % PERSON_COLOURS.length]);
  const label = document.createElement("span");
  label.className = "person-label";
  box.append(label);
  return box;
}

// The item of `items` whose time(item) is nearest to `seconds` (undefined for none).
function nearestInTime(items, seconds, time) {
  let best;
  let distance = Infinity;
  for (const item of items) {
    const d = Math.abs(time(item) - seconds);
    if (d < distance) {
      best = item;
      distance = d;
    }
  }
  return best;
}
