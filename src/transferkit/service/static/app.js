// transferkit web page: plain JS, no build step, no external resources.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let health = null;
  let lab = null; // the gallery listing (/api/lab), when one is served
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
    }
    if (health.segmenter) parts.push("segmenter: " + health.segmenter.classes.length + " classes");
    if (health.localizer) parts.push("localiser: " + health.localizer.classes.length + " classes");
    $("status").textContent = parts.join(" · ");
    $("tab-dense").hidden = !(health.segmenter || health.localizer);
    $("dense-models").textContent = [health.segmenter ? "segmentation: " + health.segmenter.directory : "",
      health.localizer ? "localisation: " + health.localizer.directory : ""].filter(Boolean).join(" · ");
    // The Lab tab exists only when a gallery is served (its listing answers).
    try {
      lab = await fetchJSON("/api/lab");
    } catch (_) {
      lab = null;
    }
    $("tab-lab").hidden = !lab;
    $("limit").textContent = "Any image format, up to " + formatBytes(health.max_upload_bytes) + ".";
    if (health.model) loadReport();
    $("tab-model").hidden = !health.model;
    for (const name of ["collection", "map", "duplicates"]) $("tab-" + name).hidden = !health.index;
    const wanted = location.hash.slice(1);
    const first = health.index ? "collection" : health.model ? "model"
      : (health.segmenter || health.localizer) ? "dense" : "classify";
    showView(VIEWS.includes(wanted) && !$("tab-" + wanted).hidden ? wanted : first);
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
    renderConfusion(data.report);
    loadMistakes();
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

  // -- segment & localise: the served dense models' overlays beside the original -------------
  let denseGeneration = 0, densePreview = null;

  async function handleDense(file) {
    if (!file) return;
    const mine = ++denseGeneration;
    const box = $("dense-error");
    box.hidden = true;
    if (health && file.size > health.max_upload_bytes) {
      box.textContent = file.name + ": " + formatBytes(file.size) + " is over the upload limit of " +
        formatBytes(health.max_upload_bytes);
      box.hidden = false;
      return;
    }
    if (densePreview) URL.revokeObjectURL(densePreview);
    densePreview = URL.createObjectURL(file);
    $("dense-original").src = densePreview;
    $("dense-busy").hidden = false;
    const calls = [health.segmenter ? postImage("/api/segment", file) : null,
                   health.localizer ? postImage("/api/localize", file) : null];
    const [segmented, localized] = await Promise.allSettled(calls);
    if (mine !== denseGeneration) return;
    $("dense-busy").hidden = true;
    const failed = [segmented, localized].find((a) => a.status === "rejected");
    if (failed) {
      box.textContent = failed.reason.message;
      box.hidden = false;
    }
    const seg = segmented.status === "fulfilled" ? segmented.value : null;
    const loc = localized.status === "fulfilled" ? localized.value : null;
    const shown = seg || loc;
    $("dense-results").hidden = !shown;
    if (!shown) return;
    $("dense-original-caption").textContent = shown.image.filename + " · " + shown.image.width +
      "×" + shown.image.height + " px";
    $("segment-figure").hidden = !seg;
    if (seg) {
      $("segment-overlay").src = "data:image/png;base64," + seg.overlay_png;
      $("segment-caption").textContent = "segmentation mask" +
        (seg.threshold !== null ? " (threshold " + seg.threshold.toFixed(2) + ")" : "") +
        " · " + seg.elapsed_ms.toFixed(0) + " ms";
      $("segment-fractions").replaceChildren(...seg.fractions.map((f) => {
        const bar = el("span", { className: "bar" });
        bar.style.width = Math.max(1, Math.round(f.fraction * 100)) + "%";
        return el("li", {}, [el("span", { className: "num" }, [(100 * f.fraction).toFixed(1) + "%"]),
                             el("span", { className: "bar-track" }, [bar]), f.label]);
      }));
    }
    $("localize-figure").hidden = !loc;
    if (loc) {
      $("localize-overlay").src = "data:image/png;base64," + loc.overlay_png;
      const b = loc.box;
      $("localize-caption").textContent = loc.label + " " + (100 * loc.probability).toFixed(1) +
        "% · box x " + b.x.toFixed(0) + ", y " + b.y.toFixed(0) + ", " + b.w.toFixed(0) + "×" +
        b.h.toFixed(0) + " px · " + loc.elapsed_ms.toFixed(0) + " ms";
    }
  }

  // -- lab: the gallery's pictures, titles, commands and numbers --------------------------
  function formatNumber(value) {
    if (Array.isArray(value)) return value.map(formatNumber).join(", ");
    if (value && typeof value === "object") {
      return Object.entries(value).map(([k, v]) => k + ": " + formatNumber(v)).join(", ");
    }
    return typeof value === "number" && !Number.isInteger(value) ? value.toFixed(3) : String(value);
  }

  function renderLab() {
    if (!lab) return;
    $("lab-pictures").replaceChildren(...lab.pictures.map((picture) => el("section",
      { className: "lab-picture", id: "lab-" + picture.key }, [
        el("h3", {}, [picture.title]),
        el("code", {}, [picture.command]),
        ...picture.figures.map((figure) => el("figure", {}, [
          el("img", { src: figure.url, alt: figure.caption, loading: "lazy" }),
          el("figcaption", {}, [figure.caption])])),
        el("ul", { className: "lab-numbers" }, Object.entries(picture.numbers).map(([k, v]) =>
          el("li", {}, [el("strong", {}, [k]), ": " + formatNumber(v)]))),
      ])));
    if (!lab.pictures.length) $("lab-pictures").replaceChildren(el("p", { className: "hint" },
      ["The gallery has no pictures yet."]));
  }

  // -- views (tabs) ------------------------------------------------------------------------
  const VIEWS = ["collection", "map", "model", "duplicates", "classify", "dense", "lab"];
  const opened = new Set();

  function showView(name) {
    for (const view of VIEWS) {
      const active = view === name;
      $("view-" + view).hidden = !active;
      $("tab-" + view).setAttribute("aria-selected", String(active));
      $("tab-" + view).classList.toggle("active", active);
    }
    if (location.hash.slice(1) !== name) history.replaceState(null, "", "#" + name);
    if (opened.has(name)) return;
    opened.add(name);
    if (name === "collection") loadItems();
    if (name === "map") loadMap();
    if (name === "duplicates") loadDuplicates();
    if (name === "lab") renderLab();
  }

  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
                   "#b07aa1", "#ff9da7", "#9c755f", "#79706e", "#1f77b4", "#2ca02c",
                   "#d62728", "#9467bd", "#8c564b", "#17becf"];
  let labelList = [];

  function colourOf(label) {
    const n = labelList.indexOf(label);
    return n < 0 ? "#8a8f98" : PALETTE[n % PALETTE.length];
  }

  function tile(item, extra, onOpen) {
    // One thumbnail with its name and label; a button, so keyboard and click both open it.
    const img = el("img", { alt: item.name, width: 96, height: 96, loading: "lazy" });
    if (item.id !== null && item.id !== undefined) setImage(img, "/thumbnails/" + item.id + "?size=96");
    const label = el("span", { className: "tile-label" }, [item.label || ""]);
    if (item.label) label.style.borderColor = colourOf(item.label);
    const button = el("button", { type: "button", className: "tile-button", title: item.path || item.name },
      [img, el("span", { className: "tile-name" }, [item.name]), label, ...(extra || [])]);
    button.dataset.id = item.id;
    if (onOpen) button.addEventListener("click", () => onOpen(item));
    return el("li", { className: "tile" }, [button]);
  }

  // -- collection: paged grid, label chips, name filter, neighbours ------------------------
  const PAGE = 120;
  const collection = { offset: 0, label: "", q: "", total: 0, generation: 0 };

  async function loadItems(focusIndex) {
    const mine = ++collection.generation;
    const params = new URLSearchParams({ offset: collection.offset, limit: PAGE });
    if (collection.label) params.set("label", collection.label);
    if (collection.q) params.set("q", collection.q);
    let data;
    try {
      data = await fetchJSON("/api/items?" + params);
    } catch (err) {
      $("page-info").textContent = "cannot list the collection: " + err.message;
      return;
    }
    if (mine !== collection.generation) return;
    collection.total = data.total;
    renderChips(data.labels);
    $("grid").replaceChildren(...data.items.map((item) => tile(item, [], openItem)));
    const last = Math.min(collection.offset + data.items.length, data.total);
    $("page-info").textContent = data.total
      ? (collection.offset + 1) + "–" + last + " of " + data.total + " images"
      : "no image matches";
    $("page-prev").disabled = collection.offset === 0;
    $("page-next").disabled = last >= data.total;
    if (focusIndex !== undefined) {
      const buttons = $("grid").querySelectorAll(".tile-button");
      if (buttons.length) buttons[Math.min(focusIndex, buttons.length - 1)].focus();
    }
  }

  function renderChips(counts) {
    labelList = Object.keys(counts);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const chip = (value, text, count) => {
      const button = el("button", { type: "button", className: "chip" },
        [text, el("span", { className: "chip-count" }, [count])]);
      button.dataset.label = value;
      button.setAttribute("aria-pressed", String(collection.label === value));
      if (value) button.style.setProperty("--chip", colourOf(value));
      button.addEventListener("click", () => {
        collection.label = value;
        collection.offset = 0;
        loadItems();
      });
      return button;
    };
    $("label-chips").hidden = !labelList.length;
    $("label-chips").replaceChildren(chip("", "All", total),
      ...labelList.map((name) => chip(name, name, counts[name])));
  }

  async function openItem(item) {
    // An indexed image's neighbours, from its stored vector (no upload, no model call).
    const panel = $("neighbours");
    let data;
    try {
      data = await fetchJSON("/api/items/" + item.id + "/similar?k=12");
    } catch (err) {
      panel.hidden = false;
      $("neighbour-timing").textContent = "neighbours unavailable: " + err.message;
      return;
    }
    setImage($("selected-image"), data.item.thumbnail_url + "?size=160");
    $("selected-name").textContent = data.item.name;
    $("selected-label").textContent = data.item.label || "";
    $("selected-label").hidden = !data.item.label;
    $("selected-path").textContent = data.item.path;
    $("neighbour-list").replaceChildren(...data.hits.map((hit) => {
      const folders = hit.path.split(/[\\/]/);
      const shown = { id: hit.id, name: hit.name, path: hit.path,
                      label: folders.length > 1 ? folders[folders.length - 2] : "" };
      return tile(shown, [el("span", { className: "hit-distance" },
                             ["distance " + hit.distance.toFixed(3)])], openItem);
    }));
    $("neighbour-timing").textContent = data.hits.length + " neighbours · " +
      data.elapsed_ms.toFixed(0) + " ms";
    panel.hidden = false;
  }

  function gridKeys(event) {
    // Arrow keys move focus in the grid (rows measured from the layout), Page keys page.
    const buttons = [...$("grid").querySelectorAll(".tile-button")];
    const at = buttons.indexOf(document.activeElement);
    if (event.key === "PageDown" || event.key === "PageUp") {
      const forward = event.key === "PageDown";
      const next = collection.offset + (forward ? PAGE : -PAGE);
      if (next >= 0 && next < collection.total) {
        collection.offset = next;
        loadItems(0);
      }
      event.preventDefault();
      return;
    }
    if (at < 0) return;
    const top = buttons[0].getBoundingClientRect().top;
    const columns = Math.max(1, buttons.filter((b) => b.getBoundingClientRect().top === top).length);
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    const target = at + step;
    if (target >= 0 && target < buttons.length) {
      buttons[target].focus();
    } else if (target >= buttons.length && collection.offset + PAGE < collection.total) {
      collection.offset += PAGE;
      loadItems(0);
    } else if (target < 0 && collection.offset > 0) {
      collection.offset -= PAGE;
      loadItems(PAGE - 1);
    }
  }

  // -- map: canvas scatter, hover thumbnail, click to open, drag a box to select -----------
  const map = { points: [], screen: null, drag: null, hover: -1, tool: "box", selected: null,
                view: { width: 1, height: 1, pad: 0 } };

  async function loadMap() {
    let response;
    try {
      response = await authorizedFetch("/api/map");
    } catch (err) {
      $("map-info").textContent = "map unavailable: " + err.message;
      return;
    }
    if (!response.ok) {
      $("map-info").textContent = "map unavailable: " + (await errorText(response));
      $("map-progress-box").hidden = true;
      return;
    }
    const data = await response.json();
    if (response.status === 202) {
      $("map-progress-box").hidden = false;
      $("map-progress").value = data.progress;
      $("map-progress-text").textContent = "projecting the index (" + data.method + ") … " +
        Math.round(100 * data.progress) + "%";
      setTimeout(loadMap, 500);
      return;
    }
    $("map-progress-box").hidden = true;
    map.points = data.points;
    const labels = [...new Set(data.points.map((p) => p.label).filter(Boolean))].sort();
    if (!labelList.length) labelList = labels;
    $("map-legend").replaceChildren(...labels.map((name) => {
      const swatch = el("span", { className: "swatch" });
      swatch.style.background = colourOf(name);
      return el("span", { className: "legend-item" }, [swatch, name]);
    }));
    $("map-info").textContent = data.points.length + " images · " + data.method.toUpperCase() +
      " projection" + (data.cached ? " (cached)" : "") +
      " · drag a box or draw a lasso to select, click a point to open it";
    drawMap();
  }

  function drawMap() {
    const canvas = $("map-canvas");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const pad = 14;
    map.view = { width, height, pad };
    map.screen = new Float32Array(map.points.length * 2);
    const radius = map.points.length > 20000 ? 1.2 : map.points.length > 2000 ? 2 : 3.5;
    ctx.globalAlpha = map.points.length > 2000 ? 0.7 : 0.9;
    map.points.forEach((p, n) => {
      const x = pad + (p.x + 1) / 2 * (width - 2 * pad);
      const y = pad + (1 - (p.y + 1) / 2) * (height - 2 * pad);
      map.screen[2 * n] = x;
      map.screen[2 * n + 1] = y;
      ctx.fillStyle = colourOf(p.label);
      ctx.fillRect(x - radius, y - radius, 2 * radius, 2 * radius);
    });
    ctx.globalAlpha = 1;
    if (map.hover >= 0) {
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 2;
      ctx.strokeRect(map.screen[2 * map.hover] - 5, map.screen[2 * map.hover + 1] - 5, 10, 10);
    }
    // the selection being drawn, else the last one (dashed, kept in map coordinates so it
    // survives a resize) so it stays clear what is listed
    const drawing = map.drag && map.drag.moved;
    const shape = drawing ? map.drag : map.selected && { path: map.selected.map(toScreen) };
    ctx.setLineDash(shape && !drawing ? [5, 4] : []);
    if (shape && shape.path) {
      ctx.fillStyle = "rgba(47, 111, 219, 0.12)";
      ctx.strokeStyle = "#2f6fdb";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      shape.path.forEach(([x, y], n) => (n ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath();
      ctx.fill();
      ctx.stroke();
    } else if (shape) {
      const d = shape;
      ctx.fillStyle = "rgba(47, 111, 219, 0.12)";
      ctx.strokeStyle = "#2f6fdb";
      ctx.lineWidth = 1;
      ctx.fillRect(d.x0, d.y0, d.x1 - d.x0, d.y1 - d.y0);
      ctx.strokeRect(d.x0, d.y0, d.x1 - d.x0, d.y1 - d.y0);
    }
    ctx.setLineDash([]);
  }

  function toData([x, y]) {
    const { width, height, pad } = map.view;
    return [(x - pad) / (width - 2 * pad) * 2 - 1, 1 - (y - pad) / (height - 2 * pad) * 2];
  }

  function toScreen([x, y]) {
    const { width, height, pad } = map.view;
    return [pad + (x + 1) / 2 * (width - 2 * pad), pad + (1 - (y + 1) / 2) * (height - 2 * pad)];
  }

  function canvasPoint(event) {
    const box = $("map-canvas").getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  }

  function nearestPoint(x, y, within) {
    let best = -1, bestDistance = within * within;
    const s = map.screen;
    if (!s) return -1;
    for (let n = 0; n < map.points.length; n++) {
      const dx = s[2 * n] - x, dy = s[2 * n + 1] - y;
      const d = dx * dx + dy * dy;
      if (d < bestDistance) { bestDistance = d; best = n; }
    }
    return best;
  }

  async function showTip(n, x, y) {
    const tip = $("map-tip");
    if (n < 0) { tip.hidden = true; return; }
    const point = map.points[n];
    setImage($("map-tip-image"), "/thumbnails/" + point.id + "?size=96");
    $("map-tip-text").textContent = (point.name || "id " + point.id) +
      (point.label ? " · " + point.label : "");
    tip.style.left = Math.min(x + 14, $("map-canvas").clientWidth - 130) + "px";
    tip.style.top = Math.max(y - 60, 0) + "px";
    tip.hidden = false;
  }

  function selectBox(d) {
    const [x0, x1] = [Math.min(d.x0, d.x1), Math.max(d.x0, d.x1)];
    const [y0, y1] = [Math.min(d.y0, d.y1), Math.max(d.y0, d.y1)];
    showSelection(pointsWhere((x, y) => x >= x0 && x <= x1 && y >= y0 && y <= y1));
  }

  function insidePolygon(x, y, polygon) {
    // Ray casting: a point is inside when a ray from it crosses the outline an odd number of times.
    let inside = false;
    for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
      const [xi, yi] = polygon[i], [xj, yj] = polygon[j];
      if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  }

  function selectLasso(path) {
    if (path.length < 3) return;
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const [x, y] of path) {
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
    }
    // the bounding box first: most of 60,000 points never reach the polygon test
    showSelection(pointsWhere((x, y) => x >= x0 && x <= x1 && y >= y0 && y <= y1 &&
                                        insidePolygon(x, y, path)));
  }

  function pointsWhere(test) {
    const chosen = [];
    for (let n = 0; n < map.points.length; n++) {
      if (test(map.screen[2 * n], map.screen[2 * n + 1])) chosen.push(map.points[n]);
    }
    return chosen;
  }

  function showSelection(chosen) {
    const shown = chosen.slice(0, 200);
    const counts = {};
    for (const p of chosen) counts[p.label || "?"] = (counts[p.label || "?"] || 0) + 1;
    const summary = Object.entries(counts).sort((a, b) => b[1] - a[1])
      .map(([k, v]) => k + " " + v).join(", ");
    $("map-selection-title").textContent = chosen.length + " selected" +
      (chosen.length > shown.length ? " (first " + shown.length + " shown)" : "") +
      (summary ? " · " + summary : "");
    $("map-selection").replaceChildren(...shown.map((p) =>
      tile({ id: p.id, name: p.name || "id " + p.id, label: p.label }, [], openFromMap)));
    $("map-selection-panel").hidden = false;
  }

  async function openFromMap(point) {
    showView("collection");
    openItem(point);
  }

  function setUpMap() {
    const canvas = $("map-canvas");
    canvas.addEventListener("mousedown", (event) => {
      const [x, y] = canvasPoint(event);
      map.drag = { x0: x, y0: y, x1: x, y1: y, moved: false,
                   path: map.tool === "lasso" ? [[x, y]] : null };
    });
    canvas.addEventListener("mousemove", (event) => {
      const [x, y] = canvasPoint(event);
      if (map.drag) {
        map.drag.x1 = x;
        map.drag.y1 = y;
        map.drag.moved = map.drag.moved || Math.abs(x - map.drag.x0) + Math.abs(y - map.drag.y0) > 4;
        if (map.drag.path) map.drag.path.push([x, y]);
        $("map-tip").hidden = true;
        drawMap();
        return;
      }
      const n = nearestPoint(x, y, 8);
      if (n !== map.hover) {
        map.hover = n;
        drawMap();
        showTip(n, x, y);
      }
    });
    window.addEventListener("mouseup", (event) => {
      if (!map.drag) return;
      const d = map.drag;
      map.drag = null;
      if (d.moved) {
        map.selected = (d.path || [[d.x0, d.y0], [d.x1, d.y0], [d.x1, d.y1], [d.x0, d.y1]])
          .map(toData);
        if (d.path) selectLasso(d.path); else selectBox(d);
      } else if (event.target === canvas) {
        const n = nearestPoint(d.x0, d.y0, 8);
        if (n >= 0) openFromMap(map.points[n]);
      }
      drawMap();
    });
    for (const radio of document.querySelectorAll("input[name=map-tool]")) {
      radio.addEventListener("change", () => { if (radio.checked) map.tool = radio.value; });
    }
    canvas.addEventListener("mouseleave", () => { map.hover = -1; $("map-tip").hidden = true; });
    window.addEventListener("resize", () => { if (map.points.length) drawMap(); });
  }

  // -- model: clickable confusion matrix and the mistakes ----------------------------------
  function evaluatedTile(row) {
    const line = el("span", { className: "verdict" },
      [row.true + " → ", el("strong", {}, [row.predicted])]);
    const odds = el("span", { className: "hit-distance odds" },
      ["p(true) " + (100 * row.probability_true).toFixed(1) + "%", el("br"),
       "p(pred) " + (100 * row.probability_predicted).toFixed(1) + "%", el("br"),
       "loss " + row.loss.toFixed(2)]);
    return tile({ id: row.id, name: row.name, label: row.true }, [line, odds],
                row.id === null ? null : openFromMap);
  }

  function renderConfusion(report) {
    const matrix = report.confusion_matrix, classes = report.classes;
    if (!matrix || !classes) return;
    const head = el("tr", {}, [el("th", {}, ["true \\ predicted"]),
                               ...classes.map((c) => el("th", { scope: "col" }, [c]))]);
    const rows = matrix.map((row, i) => {
      const total = row.reduce((a, b) => a + b, 0) || 1;
      return el("tr", {}, [el("th", { scope: "row" }, [classes[i]]), ...row.map((count, j) => {
        const cell = el("button", { type: "button", className: "cell", disabled: !count,
                                    title: classes[i] + " predicted as " + classes[j] },
                        [count || ""]);
        const share = count / total;
        cell.style.background = i === j ? `rgba(47, 111, 219, ${0.15 + 0.7 * share})`
                                        : `rgba(225, 87, 89, ${count ? 0.2 + 0.7 * share : 0})`;
        cell.dataset.true = classes[i];
        cell.dataset.pred = classes[j];
        cell.addEventListener("click", () => loadCell(classes[i], classes[j]));
        return el("td", {}, [cell]);
      })]);
    });
    $("confusion-table").replaceChildren(el("thead", {}, [head]), el("tbody", {}, rows));
    $("confusion-panel").hidden = false;
  }

  async function loadCell(trueClass, predicted) {
    const params = new URLSearchParams({ true: trueClass, pred: predicted, limit: 200 });
    let data;
    try {
      data = await fetchJSON("/api/report/confusion?" + params);
    } catch (err) {
      $("cell-title").textContent = err.message;
      $("cell-title").hidden = false;
      return;
    }
    $("cell-title").textContent = data.total + " " + data.split + " image(s): true " + trueClass +
      ", predicted " + predicted;
    $("cell-title").hidden = false;
    $("cell-images").replaceChildren(...data.items.map(evaluatedTile));
  }

  async function loadMistakes() {
    let data;
    try {
      data = await fetchJSON("/api/report/mistakes?limit=60");
    } catch (err) {
      $("mistakes-title").textContent = "Mistakes: " + err.message;
      $("mistakes-panel").hidden = false;
      return;
    }
    $("mistakes-title").textContent = "Mistakes: " + data.total + " " + data.split +
      " image(s) the model got wrong, highest loss first" +
      (data.total > data.items.length ? " (first " + data.items.length + ")" : "");
    $("mistakes").replaceChildren(...data.items.map(evaluatedTile));
    $("mistakes-panel").hidden = false;
  }

  // -- duplicates: groups under an adjustable threshold -----------------------------------
  let duplicateTimer = null, duplicateGeneration = 0;

  async function loadDuplicates() {
    const mine = ++duplicateGeneration;
    const threshold = Number($("dup-threshold").value);
    $("dup-threshold-value").textContent = threshold.toFixed(2);
    $("dup-info").textContent = "searching…";
    let data;
    try {
      data = await fetchJSON("/api/duplicates?limit=60&per_group=27&threshold=" + threshold);
    } catch (err) {
      $("dup-info").textContent = "duplicates unavailable: " + err.message;
      return;
    }
    if (mine !== duplicateGeneration) return;
    $("dup-info").textContent = data.total_groups + " group(s) within distance " +
      threshold.toFixed(2) + (data.total_groups > data.groups.length
        ? " (largest " + data.groups.length + " shown)" : "") + " · " +
      data.elapsed_ms.toFixed(0) + " ms";
    // Links chain, so a group can be large: the service lists its first images only.
    $("dup-groups").replaceChildren(...data.groups.map((group) => el("li", { className: "dup-group" }, [
      el("div", { className: "hint" }, [group.size + " images · widest distance " +
        group.max_distance.toFixed(3) + (group.size > group.items.length
          ? " · first " + group.items.length + " shown (lower the threshold to split it)" : "")]),
      el("ul", { className: "grid small" }, group.items.map((item) => tile(item, [], openFromMap))),
    ])));
  }

  function setUpViews() {
    for (const view of VIEWS) $("tab-" + view).addEventListener("click", () => showView(view));
    $("page-prev").addEventListener("click", () => {
      collection.offset = Math.max(0, collection.offset - PAGE);
      loadItems();
    });
    $("page-next").addEventListener("click", () => {
      collection.offset += PAGE;
      loadItems();
    });
    let filterTimer = null;
    $("name-filter").addEventListener("input", () => {
      clearTimeout(filterTimer);
      filterTimer = setTimeout(() => {
        collection.q = $("name-filter").value.trim();
        collection.offset = 0;
        loadItems();
      }, 200);
    });
    $("grid").addEventListener("keydown", gridKeys);
    $("dup-threshold").addEventListener("input", () => {
      $("dup-threshold-value").textContent = Number($("dup-threshold").value).toFixed(2);
      clearTimeout(duplicateTimer);
      duplicateTimer = setTimeout(loadDuplicates, 250);
    });
    setUpMap();
    window.addEventListener("hashchange", () => {
      const wanted = location.hash.slice(1);
      if (VIEWS.includes(wanted) && !$("tab-" + wanted).hidden) showView(wanted);
    });
  }

  function setUp() {
    $("audio-input").addEventListener("change", () => {
      handleClip($("audio-input").files[0]);
      $("audio-input").value = "";
    });
    $("dense-input").addEventListener("change", () => {
      handleDense($("dense-input").files[0]);
      $("dense-input").value = "";
    });
    const denseZone = $("dense-zone");
    denseZone.addEventListener("dragover", (event) => { event.preventDefault(); });
    denseZone.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        $("dense-input").click();
      }
    });
    denseZone.addEventListener("drop", (event) => {
      event.preventDefault();
      const files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) handleDense(files[0]);
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
    setUpViews();
    loadHealth();
  }

  document.addEventListener("DOMContentLoaded", setUp);
})();
