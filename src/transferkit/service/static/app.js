// transferkit web page: plain JS, no build step, no external resources.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let health = null;
  let currentPreview = null;
  let generation = 0; // ignore answers to an upload that a newer upload replaced

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children || []) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = !message;
  }

  function formatBytes(n) {
    if (n >= 1024 * 1024) return (n / 1024 / 1024).toFixed(1) + " MB";
    if (n >= 1024) return (n / 1024).toFixed(0) + " KB";
    return n + " B";
  }

  async function errorText(response) {
    // The API answers errors as JSON {detail: "..."} (or FastAPI's list for validation).
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) {
        return body.detail.map((d) => (d.loc || []).join(".") + ": " + d.msg).join("; ");
      }
    } catch (_) { /* not JSON */ }
    return "HTTP " + response.status + " " + response.statusText;
  }

  // A service started with --token wants "Authorization: Bearer <token>" on API calls: the
  // token comes from the address (http://host:port/#token=...) or is asked for once.
  let token = sessionStorage.getItem("transferkit-token") || "";
  const fromAddress = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromAddress) {
    token = fromAddress;
    sessionStorage.setItem("transferkit-token", token);
    history.replaceState(null, "", location.pathname);
  }

  async function authorizedFetch(url, options) {
    const withToken = () => {
      const headers = new Headers((options || {}).headers || {});
      if (token) headers.set("Authorization", "Bearer " + token);
      return fetch(url, Object.assign({}, options, { headers }));
    };
    let response = await withToken();
    if (response.status === 401) {
      token = window.prompt("This service needs its access token:") || "";
      sessionStorage.setItem("transferkit-token", token);
      response = await withToken();
    }
    return response;
  }

  async function fetchJSON(url, options) {
    // Every API call: an error answer becomes an Error carrying the service's message.
    const response = await authorizedFetch(url, options);
    if (!response.ok) throw new Error(await errorText(response));
    return response.json();
  }

  async function setImage(img, url) {
    // <img src> cannot send a token: with one, fetch the picture and show it as a blob.
    if (!token) { img.src = url; return; }
    const response = await authorizedFetch(url);
    if (response.ok) img.src = URL.createObjectURL(await response.blob());
  }

  function postImage(url, file) {
    const form = new FormData();
    form.append("file", file, file.name || "upload");
    return fetchJSON(url, { method: "POST", body: form });
  }

  // -- status and report ------------------------------------------------------------------
  async function loadHealth() {
    try {
      health = await fetchJSON("/api/health");
    } catch (err) {
      $("status").textContent = "service unavailable: " + err.message;
      return;
    }
    const parts = ["backbone " + health.backbone];
    parts.push(health.model ? "model: " + health.model.classes.length + " classes"
                            : "ImageNet classes (no trained model)");
    parts.push(health.index ? "index: " + health.index.size + " images" : "no index");
    if (health.text_index) {
      parts.push("text index: " + health.text_index.size + " texts (" +
                 health.text_index.backbone + ")");
      $("text-search").hidden = false;
      $("text-link").hidden = false;
    }
    if (health.audio_index || health.audio_model) {
      if (health.audio_index) {
        parts.push("audio index: " + health.audio_index.size + " clips (" +
                   health.audio_index.backbone + ")");
      }
      if (health.audio_model) {
        parts.push("audio model: " + health.audio_model.classes.length + " classes");
      }
      $("audio").hidden = false;
      $("audio-link").hidden = false;
    }
    $("status").textContent = parts.join(" · ");
    $("limit").textContent = "Any image format, up to " + formatBytes(health.max_upload_bytes) + ".";
    if (health.model) loadReport();
  }

  const HEADLINE = ["accuracy", "balanced_accuracy", "chance_accuracy", "n", "split",
                    "strategy", "backbone"];
  const RATE = /accuracy|precision|recall|f1/;

  function metricRows(report) {
    // Known headline numbers first, then any other top-level scalar, then "section.key" rows
    // for small objects of scalars (e.g. timing).
    const rows = [];
    const scalar = (v) => ["number", "string", "boolean"].includes(typeof v);
    const keys = [...HEADLINE.filter((k) => k in report),
                  ...Object.keys(report).filter((k) => !HEADLINE.includes(k))];
    for (const key of keys) {
      const value = report[key];
      if (scalar(value)) {
        rows.push([key, value]);
      } else if (value && typeof value === "object" && !Array.isArray(value)) {
        for (const [sub, inner] of Object.entries(value)) {
          if (scalar(inner)) rows.push([key + "." + sub, inner]);
        }
      }
    }
    return rows;
  }

  function nestedTable(title, value, firstColumn) {
    // {row: {metric: number}} (per-class metrics, per-split metrics) as a table, or null.
    if (!value || typeof value !== "object" || Array.isArray(value)) return null;
    const inner = Object.values(value).filter((v) => v && typeof v === "object" && !Array.isArray(v));
    if (!inner.length) return null;
    const columns = Object.keys(inner[0]).filter((c) => typeof inner[0][c] === "number");
    if (!columns.length) return null;
    const head = el("tr", {}, [el("th", {}, [firstColumn]),
                               ...columns.map((c) => el("th", { className: "num" }, [c]))]);
    const body = Object.entries(value).map(([name, metrics]) => el("tr", {}, [
      el("th", { scope: "row" }, [name]),
      ...columns.map((c) => el("td", { className: "num" }, [formatValue(metrics[c], c)])),
    ]));
    return el("table", { className: "metrics nested" },
      [el("caption", {}, [title]), el("thead", {}, [head]), el("tbody", {}, body)]);
  }

  function formatValue(v, name) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (RATE.test(name || "") && v >= 0 && v <= 1) return (v * 100).toFixed(1) + "%";
    return Number.isInteger(v) ? String(v) : v.toFixed(3);
  }

  async function loadReport() {
    let data;
    try {
      data = await fetchJSON("/api/report");
    } catch (err) {
      $("report-model").textContent = "report unavailable: " + err.message;
      $("report").hidden = false;
      return;
    }
    $("report-link").hidden = false;
    $("report").hidden = false;
    $("report-model").textContent = data.model.directory + " · classes: " + data.model.classes.join(", ");
    const rows = metricRows(data.report).map(([k, v]) => el("tr", {}, [
      el("th", { scope: "row" }, [k]), el("td", { className: "num" }, [formatValue(v, k)]),
    ]));
    const container = $("report-metrics");
    container.replaceChildren(el("table", { className: "metrics", id: "metrics-table" },
      [el("caption", {}, ["Summary"]), el("tbody", {}, rows)]));
    for (const [key, title, first] of [["splits", "By split", "split"],
                                       ["per_class", "By class", "class"]]) {
      const table = nestedTable(title, data.report[key], first);
      if (table) container.append(table);
    }
    $("confusion-caption").textContent = "Confusion matrix (" + (data.report.split || "test") +
      " split)";
    if (data.images.confusion_matrix) {
      setImage($("confusion-matrix"), data.images.confusion_matrix);
      $("confusion-figure").hidden = false;
    }
    if (data.images.learning_curve) {
      setImage($("learning-curve"), data.images.learning_curve);
      $("curve-figure").hidden = false;
    }
  }

  // -- upload and results -----------------------------------------------------------------
  function renderPredictions(result) {
    $("pred-source").textContent = result.source === "model" ? "trained model" : "ImageNet";
    const rows = result.predictions.map((p, i) => {
      const bar = el("span", { className: "bar" });
      bar.style.width = Math.max(1, Math.round(p.probability * 100)) + "%";
      return el("tr", { className: "prediction" }, [
        el("td", { className: "rank" }, [i + 1]),
        el("td", { className: "label" }, [p.label]),
        el("td", { className: "prob" }, [
          el("span", { className: "bar-track" }, [bar]),
          el("span", { className: "num" }, [(p.probability * 100).toFixed(1) + "%"]),
        ]),
      ]);
    });
    $("predictions").tBodies[0].replaceChildren(...rows);
    $("pred-timing").textContent = "model time " + result.elapsed_ms.toFixed(0) + " ms";
  }

  function renderHits(result) {
    const items = result.hits.map((hit) => {
      const img = el("img", { alt: hit.name, title: hit.path, width: 128, height: 128 });
      setImage(img, hit.thumbnail_url);
      const folders = hit.path.split(/[\\/]/).slice(0, -1);
      return el("li", { className: "hit" }, [
        img,
        el("span", { className: "hit-folder" }, [folders.length ? folders[folders.length - 1] : ""]),
        el("span", { className: "hit-name" }, [hit.name]),
        el("span", { className: "hit-distance" }, ["distance " + hit.distance.toFixed(3)]),
      ]);
    });
    $("hits").replaceChildren(...items);
    $("search-timing").textContent = result.hits.length + " neighbours · model time " +
      result.elapsed_ms.toFixed(0) + " ms";
  }

  async function handleFile(file) {
    if (!file) return;
    const mine = ++generation;
    showError("");
    if (health && file.size > health.max_upload_bytes) {
      showError(file.name + ": " + formatBytes(file.size) + " is over the upload limit of " +
                formatBytes(health.max_upload_bytes));
      return;
    }
    if (currentPreview) URL.revokeObjectURL(currentPreview);
    currentPreview = URL.createObjectURL(file);
    $("preview").src = currentPreview;
    $("query-caption").textContent = file.name + " (" + formatBytes(file.size) + ")";
    $("busy").hidden = false;
    const jobs = [postImage("/api/predict?k=5", file)];
    const withSearch = Boolean(health && health.index);
    if (withSearch) jobs.push(postImage("/api/search?k=8", file));
    const [predicted, searched] = await Promise.allSettled(jobs);
    if (mine !== generation) return;
    $("busy").hidden = true;
    if (predicted.status === "rejected") {
      $("results").hidden = true;
      showError(predicted.reason.message);
      return;
    }
    renderPredictions(predicted.value);
    $("search-panel").hidden = !withSearch;
    if (withSearch) {
      if (searched.status === "fulfilled") renderHits(searched.value);
      else showError("search failed: " + searched.reason.message);
    }
    $("results").hidden = false;
  }

  // -- text search --------------------------------------------------------------------------
  let textGeneration = 0;

  async function searchText(query) {
    const mine = ++textGeneration;
    const box = $("text-error");
    box.hidden = true;
    let result;
    try {
      result = await fetchJSON("/api/search-text?k=8&q=" + encodeURIComponent(query));
    } catch (err) {
      if (mine !== textGeneration) return;
      box.textContent = err.message;
      box.hidden = false;
      $("text-hits").replaceChildren();
      $("text-timing").textContent = "";
      return;
    }
    if (mine !== textGeneration) return;
    const items = result.hits.map((hit) => el("li", { className: "text-hit" }, [
      el("span", { className: "text-hit-text" }, [hit.text]),
      el("span", { className: "hit-distance" }, ["similarity " + hit.score.toFixed(3)]),
    ]));
    $("text-hits").replaceChildren(...items);
    $("text-timing").textContent = result.hits.length + " texts · " + result.encoder +
      " · model time " + result.elapsed_ms.toFixed(0) + " ms";
  }

  // -- sounds: an audio model's top-k and/or the nearest indexed clips ----------------------
  let audioGeneration = 0;

  async function handleClip(file) {
    if (!file) return;
    const mine = ++audioGeneration;
    const box = $("audio-error");
    box.hidden = true;
    const calls = [];
    if (health.audio_model) calls.push(postImage("/api/predict-audio?k=3", file));
    if (health.audio_index) calls.push(postImage("/api/search-audio?k=8", file));
    const answers = await Promise.allSettled(calls);
    if (mine !== audioGeneration) return;
    const failed = answers.find((a) => a.status === "rejected");
    box.textContent = failed ? failed.reason.message : "";
    box.hidden = !failed;
    const done = answers.filter((a) => a.status === "fulfilled").map((a) => a.value);
    const prediction = done.find((a) => a.top_k);
    const search = done.find((a) => a.hits);
    $("audio-predictions").replaceChildren(...(prediction ? prediction.top_k : []).map((p) =>
      el("li", {}, [p.label + " " + (100 * p.probability).toFixed(1) + "%"])));
    $("audio-hits").replaceChildren(...(search ? search.hits : []).map((hit) =>
      el("li", { className: "text-hit" }, [
        el("span", { className: "text-hit-text" }, [hit.path]),
        el("span", { className: "hit-distance" }, ["similarity " + hit.score.toFixed(3)]),
      ])));
    const note = done.map((a) => a.licence_note).find(Boolean);
    $("audio-note").textContent = note ? "note: " + note : "";
    $("audio-note").hidden = !note;
    $("audio-timing").textContent = done.map((a) => a.encoder + " " +
      a.elapsed_ms.toFixed(0) + " ms").join(" · ");
  }

  function setUp() {
    $("audio-input").addEventListener("change", () => {
      handleClip($("audio-input").files[0]);
      $("audio-input").value = "";
    });
    $("text-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const query = $("text-query").value.trim();
      if (query) searchText(query);
    });
    const input = $("file-input");
    const zone = $("dropzone");
    input.addEventListener("change", () => {
      handleFile(input.files[0]);
      input.value = ""; // choosing the same file again still triggers a change
    });
    for (const name of ["dragenter", "dragover"]) {
      zone.addEventListener(name, (event) => {
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
        zone.classList.add("dragging");
      });
    }
    for (const name of ["dragleave", "dragend"]) {
      zone.addEventListener(name, () => zone.classList.remove("dragging"));
    }
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (!files || !files.length) {
        showError("nothing to upload: drop an image file (not a link or text)");
        return;
      }
      handleFile(files[0]);
    });
    zone.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
    });
    // Pasting an image (e.g. a screenshot) works like dropping it.
    window.addEventListener("paste", (event) => {
      const files = event.clipboardData && event.clipboardData.files;
      if (files && files.length) { event.preventDefault(); handleFile(files[0]); }
    });
    // A file dropped outside the zone must not make the browser navigate away from the page.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
    loadHealth();
  }

  document.addEventListener("DOMContentLoaded", setUp);
})();
