// vidseek search page: plain JS, no build step. Talks to the same origin's /search, /search/image and media
// endpoints.
"use strict";

const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = "vidseek.token";

function token() { return $("#token").value.trim(); }

function authHeaders() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

// <img> and <video> cannot send headers: media URLs carry the token as ?token= (the service accepts it there only).
function mediaUrl(url) {
  const t = token();
  return t ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(t) : url;
}

function seconds(x) {
  const s = Math.max(0, Number(x) || 0);
  const m = Math.floor(s / 60);
  return m + ":" + (s - 60 * m).toFixed(1).padStart(4, "0");
}

function setStatus(text, isError) {
  const el = $("#status");
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
  el.classList.remove("warning");
}

function errorText(status, body) {
  if (status === 401) return "This service needs a token: open “token” above and paste it.";
  const d = body && body.detail;
  if (Array.isArray(d)) return d.map((e) => (e.loc || []).slice(1).join(".") + ": " + e.msg).join("; ");
  return d ? String(d) : "HTTP " + status;
}

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children || []) node.appendChild(c);
  return node;
}

function renderHit(hit) {
  const [start, end] = hit.moment;
  const score = hit.score === null || hit.score === undefined ? "–" : hit.score.toFixed(3);
  const img = el("img", { src: mediaUrl(hit.thumbnail), alt: hit.name + " at " + seconds(hit.best_t), loading: "lazy" });
  const card = el("button", {
    type: "button", class: "hit", "data-testid": "hit",
    title: hit.path,
    dataset: { videoId: hit.video_id, start: String(start), end: String(end), bestT: String(hit.best_t) },
  }, [
    el("div", { class: "thumb" }, [img, el("span", { class: "badge", text: seconds(start) + "–" + seconds(end) }),
                                    el("span", { class: "rank", text: "#" + hit.rank })]),
    el("div", { class: "meta" }, [
      el("span", { class: "name", text: hit.name }),
      el("span", { class: "sub", text: "score " + score + " · best " + seconds(hit.best_t) }),
    ]),
  ]);
  card.addEventListener("click", () => play(hit, card));
  return card;
}

function play(hit, card) {
  document.querySelectorAll(".hit.active").forEach((c) => c.classList.remove("active"));
  card.classList.add("active");
  const video = $("#video");
  const start = Number(hit.moment[0]) || 0;
  $("#player").hidden = false;
  $("#player-title").textContent = hit.name;
  $("#player-moment").textContent = "moment " + seconds(hit.moment[0]) + "–" + seconds(hit.moment[1]);
  video.dataset.start = String(start);
  const seek = () => {
    video.currentTime = start;
    video.play().catch(() => {});  // autoplay may be refused; the controls still work
  };
  video.addEventListener("loadedmetadata", seek, { once: true });
  video.src = mediaUrl(hit.file) + "#t=" + start.toFixed(3);
  video.load();
  $("#player").scrollIntoView({ block: "nearest" });
}

async function search(event) {
  if (event) event.preventDefault();
  const q = $("#q").value.trim();
  if (!q) return;
  const params = new URLSearchParams({ q, k: $("#k").value, rerank: $("#rerank").checked ? "true" : "false" });
  setStatus("Searching…");
  $("#go").disabled = true;
  try {
    const res = await fetch("/search?" + params, { headers: authHeaders() });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      setStatus(errorText(res.status, body), true);
      return;
    }
    showHits(body, `“${body.query}”`);
    $("#results").dataset.query = body.query;
  } catch (e) {
    setStatus("Search failed: " + e, true);
  } finally {
    $("#go").disabled = false;
  }
}

function showHits(body, label) {
  const results = $("#results");
  results.replaceChildren(...body.hits.map(renderHit));
  const mode = body.params.rerank ? "reranked" : "first stage only";
  setStatus((body.hits.length ? `${body.hits.length} videos for ${label} (${mode}, ${body.took_ms} ms)`
                              : `No videos for ${label}.`) + (body.warning ? " Warning: " + body.warning : ""));
  $("#status").classList.toggle("warning", Boolean(body.warning));  // e.g. a store of random weights
}

const IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp"];

// The dropped (or chosen) image is uploaded to /search/image; its hits are shown as text search's are.
async function searchImage(file) {
  if (!file) return;
  if (!IMAGE_TYPES.includes(file.type)) {
    setStatus(`${file.name}: ${file.type || "unknown type"}; drop a JPEG, PNG or WebP image.`, true);
    return;
  }
  const params = new URLSearchParams({ k: $("#k").value, rerank: $("#rerank").checked ? "true" : "false" });
  const form = new FormData();
  form.append("file", file, file.name);
  setStatus("Searching by image…");
  try {
    const res = await fetch("/search/image?" + params, { method: "POST", headers: authHeaders(), body: form });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      setStatus(errorText(res.status, body), true);
      return;
    }
    showHits(body, `image “${body.image}”`);
    $("#results").dataset.image = body.image;
  } catch (e) {
    setStatus("Image search failed: " + e, true);
  }
}

function initDrop() {
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    searchImage(e.dataTransfer.files[0]);
  });
  $("#image").addEventListener("change", (e) => { searchImage(e.target.files[0]); e.target.value = ""; });
}

function init() {
  initDrop();
  const tokenInput = $("#token");
  tokenInput.value = localStorage.getItem(TOKEN_KEY) || "";
  if (tokenInput.value) $("#settings").open = false;
  tokenInput.addEventListener("change", () => {
    if (token()) localStorage.setItem(TOKEN_KEY, token());
    else localStorage.removeItem(TOKEN_KEY);
  });
  $("#search-form").addEventListener("submit", search);
  $("#rerank").addEventListener("change", () => { if ($("#q").value.trim()) search(); });
  $("#player-close").addEventListener("click", () => {
    const v = $("#video");
    v.pause();
    v.removeAttribute("src");
    v.load();
    $("#player").hidden = true;
  });
  const q = new URLSearchParams(location.search).get("q");
  if (q) { $("#q").value = q; search(); }
}

document.addEventListener("DOMContentLoaded", init);
