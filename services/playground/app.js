// genserve playground: plain JS against the gateway's REST API (/v1).
"use strict";

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const keyInput = $("api-key");
keyInput.value = localStorage.getItem("genserve-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("genserve-key", keyInput.value));

function showError(message) { $("error").textContent = message || ""; }

async function call(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (keyInput.value) headers.authorization = "Bearer " + keyInput.value;
  const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const e = data.error || {};
    const error = new Error(`${response.status} ${e.code || ""}: ${e.message || ""}` +
                            (e.field ? ` (field ${e.field})` : ""));
    error.status = response.status;
    error.retryAfter = parseFloat(response.headers.get("retry-after") || "1");
    throw error;
  }
  return data;
}

// A GET that waits out 429 and 503 (Retry-After) instead of giving up: for polling.
async function poll(path) {
  for (;;) {
    try {
      return await call("GET", path);
    } catch (err) {
      if (err.status !== 429 && err.status !== 503) throw err;
      await sleep(1000 * err.retryAfter);
    }
  }
}

function guarded(fn) {
  return async () => {
    showError("");
    try { await fn(); } catch (err) { showError(err.message); }
  };
}

const png = (b64) => "data:image/png;base64," + b64;
const gif = (b64) => "data:image/gif;base64," + b64;
const int = (id) => parseInt($(id).value, 10);

// -- translation: the text and its attention as a heat map ------------------------------
function heatmap(el, rows, cols, matrix) {
  el.replaceChildren();
  el.style.gridTemplateColumns = `max-content repeat(${cols.length}, 2.2rem)`;
  el.append(Object.assign(document.createElement("div"), { className: "label" }));
  for (const c of cols) {
    el.append(Object.assign(document.createElement("div"), { className: "label col", textContent: c }));
  }
  matrix.forEach((row, i) => {
    el.append(Object.assign(document.createElement("div"), { className: "label row-label", textContent: rows[i] }));
    row.forEach((w, j) => {
      const cell = document.createElement("div");
      cell.className = "cell";
      cell.dataset.weight = w.toFixed(3);
      cell.title = `${rows[i]} → ${cols[j]}: ${w.toFixed(2)}`;
      cell.style.background = `rgba(20, 80, 200, ${Math.min(1, w).toFixed(3)})`;
      el.append(cell);
    });
  });
}

$("tr-go").addEventListener("click", guarded(async () => {
  $("tr-output").textContent = "…";
  const data = await call("POST", "/v1/translate", {
    texts: [$("tr-text").value], num_beams: int("tr-beams"), return_attention: true,
  });
  const t = data.translations[0];
  $("tr-output").textContent = t.text;
  // The demo model reports the words its training corpus never had (a real checkpoint
  // does not): its translation of those is a guess.
  const unknown = t.unknown_words || [];
  $("tr-unknown").textContent = unknown.length
    ? `Words the model never saw in training: ${unknown.join(", ")}`
    : "";
  heatmap($("tr-attention"), t.target_tokens, t.source_tokens, t.attention.matrix);
}));

// -- image generation: a job, its previews while it runs, then the frames ---------------
$("ig-go").addEventListener("click", guarded(async () => {
  const steps = int("ig-steps");
  let job = await call("POST", "/v1/jobs", {
    prompt: $("ig-prompt").value, steps, seed: int("ig-seed"),
    scheduler: $("ig-scheduler").value, frames: "gif",
  });
  $("ig-progress").max = steps;
  while (job.status === "queued" || job.status === "running") {
    $("ig-progress").value = job.step;
    $("ig-status").textContent = `${job.status}: step ${job.step} of ${job.steps}`;
    if (job.preview_png_base64) $("ig-preview").src = png(job.preview_png_base64);
    await sleep(500);  // twice a second: well inside a key's rate limit
    job = await poll(`/v1/jobs/${job.id}`);
  }
  $("ig-progress").value = job.step;
  $("ig-status").textContent = `${job.status}: step ${job.step} of ${job.steps}`;
  if (job.preview_png_base64) $("ig-preview").src = png(job.preview_png_base64);
  if (job.status !== "succeeded") throw new Error(job.error || job.status);
  const result = await poll(`/v1/jobs/${job.id}/result`);
  $("ig-result").src = png(result.images[0].png_base64);
  $("ig-frames").src = gif(result.images[0].frames_base64);
}));

// -- GAN: samples, and a walk through the latent space -----------------------------------
$("gan-sample").addEventListener("click", guarded(async () => {
  const body = { seed: int("gan-seed"), n: int("gan-n") };
  if ($("gan-digit").value !== "") body.digit = int("gan-digit");
  const data = await call("POST", "/v1/samples", body);
  $("gan-samples").replaceChildren(...data.images.map((im) => Object.assign(
    document.createElement("img"), { src: png(im.png_base64), alt: `digit ${im.digit}`, title: `digit ${im.digit}` },
  )));
}));

$("gan-interpolate").addEventListener("click", guarded(async () => {
  const body = { seed_a: int("gan-seed-a"), seed_b: int("gan-seed-b"), frames: int("gan-frames") };
  const frames = await call("POST", "/v1/interpolate", { ...body, format: "json" });
  $("gan-strip").replaceWith(Object.assign(document.createElement("div"), {
    id: "gan-strip", className: "row",
  }));
  $("gan-strip").append(...frames.images.map((im) => Object.assign(
    document.createElement("img"), { src: png(im.png_base64), alt: "frame" },
  )));
  // The same walk as one animated GIF.
  const headers = { "content-type": "application/json" };
  if (keyInput.value) headers.authorization = "Bearer " + keyInput.value;
  const response = await fetch("/v1/interpolate", { method: "POST", headers, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${response.status} from /v1/interpolate`);
  $("gan-animation").src = URL.createObjectURL(await response.blob());
}));
