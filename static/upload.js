// The home page's uploader: pick, drop or paste images; check them against the caller's
// limits; send them to the public API with a progress bar per file; show each image's links.
// Without JavaScript the same form posts to "/" and the server renders the results.
"use strict";
(() => {
  const form = document.getElementById("upload-form");
  const template = document.getElementById("result-template");
  if (!form || !template) return;

  const API = "/api/v1"; // same origin: the page's CSP allows connect-src 'self' only
  const KEY_STORAGE = "imglink.apiKey";
  const limitsBox = document.getElementById("limits");
  const limitsText = document.getElementById("limits-text");
  const planBadge = document.getElementById("limits-plan");
  const notice = document.getElementById("notice");
  const fileInput = document.getElementById("files");
  const dropzone = document.getElementById("dropzone");
  const results = document.getElementById("results");
  const keyBox = document.getElementById("api-key-box");
  const keyInput = document.getElementById("api-key");
  const keyStatus = document.getElementById("key-status");
  const forgetKey = document.getElementById("forget-key");
  const albumInput = document.getElementById("album");
  const expirySelect = document.getElementById("expiry");

  // The anonymous plan's limits, rendered by the server (the same fields as GET /limits),
  // plus what browsers call each format.
  const anonymous = JSON.parse(limitsBox.dataset.limits);
  const types = anonymous.types || {};
  let limits = anonymous;
  let cardCount = 0;

  // Helpers ----------------------------------------------------------------------------

  function humanSize(size) {
    if (size < 1024) return size === 1 ? "1 byte" : `${size.toLocaleString("en")} bytes`;
    let value = size;
    let unit = "";
    for (unit of ["KB", "MB", "GB", "TB"]) {
      value /= 1024;
      if (value < 1024) break;
    }
    return value >= 100 || Number.isInteger(value) ? `${Math.round(value)} ${unit}`
      : `${value.toFixed(1)} ${unit}`;
  }

  function showNotice(message) {
    notice.textContent = message;
    notice.hidden = false;
  }

  function hideNotice() {
    notice.hidden = true;
    notice.textContent = "";
  }

  function storedKey() {
    try { return localStorage.getItem(KEY_STORAGE) || ""; } catch { return ""; }
  }

  function storeKey(key) {
    try {
      if (key) localStorage.setItem(KEY_STORAGE, key);
      else localStorage.removeItem(KEY_STORAGE);
    } catch { /* storage disabled: the key lasts as long as the page */ }
  }

  function currentKey() {
    return keyInput.value.trim();
  }

  // An API error in words: the envelope's message, else what the status means.
  function errorMessage(status, payload, retryAfter) {
    if (payload && payload.error && payload.error.message) return payload.error.message;
    if (status === 0) return "The server could not be reached. Check your connection and try again.";
    if (status === 413) return "The upload is larger than this server accepts. Choose fewer or smaller files.";
    if (status === 429) {
      const wait = Number(retryAfter);
      return wait > 0 ? `Too many uploads for now. Try again in ${Math.ceil(wait / 60)} minute(s).`
        : "Too many uploads for now. Try again later.";
    }
    if (status >= 500) return "The server had a problem. Please try again in a moment.";
    return `The upload failed (HTTP status ${status}).`;
  }

  function parseJson(text) {
    try { return JSON.parse(text); } catch { return null; }
  }

  // Limits -----------------------------------------------------------------------------

  function renderLimits() {
    const parts = [limits.formats.join(", "), `up to ${humanSize(limits.max_file_size)} each`];
    parts.push(limits.max_files_per_bulk == null ? "any number of files at a time"
      : `up to ${limits.max_files_per_bulk} files at a time`);
    limitsText.textContent = parts.join(" · ");
    planBadge.textContent = limits.plan;
  }

  function showQuota(xhrOrResponse) {
    const get = (name) => (xhrOrResponse.getResponseHeader ? xhrOrResponse.getResponseHeader(name)
      : xhrOrResponse.headers.get(name));
    const remaining = get("X-RateLimit-Remaining");
    const limit = get("X-RateLimit-Limit");
    if (remaining && limit && limit !== "unlimited") {
      planBadge.title = `${remaining} of ${limit} API requests left this hour`;
    }
  }

  // With a key, ask the API for that key's plan; anonymous limits need no request (they are
  // in the page, and every API request spends the caller's hourly quota).
  async function refreshLimits() {
    const key = currentKey();
    keyStatus.textContent = "";
    keyStatus.className = "hint";
    if (!key) {
      limits = anonymous;
      renderLimits();
      return;
    }
    try {
      const response = await fetch(`${API}/limits`, {
        headers: { Authorization: `Bearer ${key}`, Accept: "application/json" },
        cache: "no-store",
      });
      const payload = parseJson(await response.text());
      showQuota(response);
      if (response.ok && payload && payload.success) {
        limits = payload.data;
        keyStatus.textContent = `Key accepted: uploads use the ${limits.plan} plan.`;
        keyStatus.className = "hint ok";
      } else {
        limits = anonymous;
        keyStatus.textContent = `${errorMessage(response.status, payload)}. Fix the key, or press Forget to upload without one.`
          .replace(/\.\. /, ". ");
        keyStatus.className = "hint error";
      }
    } catch {
      keyStatus.textContent = "Could not check the key: the server could not be reached.";
      keyStatus.className = "hint error";
    }
    renderLimits();
  }

  // Why `file` may not be uploaded under the current limits, or "" when it may.
  function checkFile(file) {
    const name = file.name || "The pasted image";
    if (limits.max_file_size != null && file.size > limits.max_file_size) {
      return `${name} is ${humanSize(file.size)}; the ${limits.plan} plan allows at most ${humanSize(limits.max_file_size)} per file.`;
    }
    if (file.size === 0) return `${name} is empty.`;
    const ext = file.name && file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
    const known = limits.formats.some((format) => {
      const hint = types[format] || { media_types: [], extensions: [format.toLowerCase()] };
      return hint.media_types.includes(file.type) || hint.extensions.includes(ext);
    });
    if (!known && (file.type || ext)) {
      return `${name} is not an accepted image type. Accepted: ${limits.formats.join(", ")}.`;
    }
    return "";
  }

  // Result cards -----------------------------------------------------------------------

  function makeCard(file) {
    const card = template.content.firstElementChild.cloneNode(true);
    const n = ++cardCount;
    card.id = `upload-${n}`;
    for (const input of card.querySelectorAll("input.link-value")) {
      const id = `r${n}-${input.dataset.key}`;
      const row = input.closest(".link-row");
      row.querySelector("label").htmlFor = id;
      row.querySelector("button.copy").dataset.copy = id;
      input.id = id;
    }
    card.querySelector(".result-name").textContent = file.name || "Pasted image";
    // A local preview while the file uploads (blob: URLs are allowed by the page's CSP).
    const thumb = card.querySelector(".result-thumb");
    if (file.size && file.type.startsWith("image/")) {
      const preview = URL.createObjectURL(file);
      thumb.src = preview;
      const done = () => URL.revokeObjectURL(preview);
      thumb.addEventListener("load", done, { once: true });
      thumb.addEventListener("error", () => { done(); thumb.removeAttribute("src"); }, { once: true });
    }
    card.querySelector(".result-status").textContent = `Waiting · ${humanSize(file.size)}`;
    return card;
  }

  function setProgress(card, percent) {
    card.querySelector(".result-progress").value = percent;
    card.querySelector(".result-status").textContent = percent >= 100 ? "Processing…"
      : `Uploading… ${Math.floor(percent)}%`;
  }

  function fail(card, message) {
    card.classList.add("failed");
    card.querySelector(".result-status").textContent = message;
  }

  function showImage(card, image) {
    card.classList.add("done");
    const name = card.querySelector(".result-name");
    const link = document.createElement("a");
    link.href = image.links.view_page;
    link.textContent = image.filename;
    name.replaceChildren(link);
    const thumb = card.querySelector(".result-thumb");
    thumb.src = image.links.thumbnail;
    thumb.alt = image.filename;
    card.querySelector(".result-thumb-link").href = image.links.view_page;
    const facts = [`${image.width} × ${image.height} px`, image.format, humanSize(image.size)];
    if (image.album) facts.push(`album ${image.album}`);
    if (image.expires_at) facts.push(`expires ${image.expires_at.replace("T", " ").replace("Z", " UTC")}`);
    card.querySelector(".result-status").textContent = facts.join(" · ");
    for (const input of card.querySelectorAll("input.link-value")) {
      input.value = image.links[input.dataset.key] || "";
    }
    const remove = card.querySelector(".result-delete");
    remove.href = image.links.delete;
    remove.textContent = image.links.delete;
    card.querySelector(".result-body").hidden = false;
  }

  // Uploading --------------------------------------------------------------------------

  function handleFiles(fileList) {
    const files = Array.from(fileList || []);
    hideNotice();
    if (!files.length) return;
    const max = limits.max_files_per_bulk;
    if (max != null && files.length > max) {
      showNotice(`You chose ${files.length} files, but the ${limits.plan} plan takes at most ${max} at a time. Choose ${max} or fewer, and upload the rest afterwards.`);
      return;
    }
    const cards = files.map(makeCard);
    const fragment = document.createDocumentFragment();
    cards.forEach((card) => fragment.append(card));
    results.prepend(fragment);
    const accepted = [];
    files.forEach((file, i) => {
      const problem = checkFile(file);
      if (problem) fail(cards[i], problem);
      else accepted.push([file, cards[i]]);
    });
    if (accepted.length) send(accepted);
  }

  function send(batch) {
    const files = batch.map(([file]) => file);
    const cards = batch.map(([, card]) => card);
    const single = files.length === 1;
    const body = new FormData();
    const album = albumInput.value.trim();
    if (album) body.append("album", album);
    if (expirySelect.value && expirySelect.value !== "0") body.append("expiry", expirySelect.value);
    for (const file of files) body.append(single ? "file" : "files", file, file.name || "pasted-image.png");

    const xhr = new XMLHttpRequest();
    xhr.open("POST", single ? `${API}/upload` : `${API}/upload/bulk`);
    xhr.setRequestHeader("Accept", "application/json");
    const key = currentKey();
    if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);

    // One request carries every file, one after the other: the share of the body sent so
    // far, laid over the files' sizes in order, gives each file its own bar.
    const total = files.reduce((sum, file) => sum + file.size, 0);
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable || !event.total) return;
      const sent = (event.loaded / event.total) * total;
      let offset = 0;
      files.forEach((file, i) => {
        const done = Math.min(Math.max(sent - offset, 0), file.size);
        setProgress(cards[i], file.size ? (done / file.size) * 100 : 100);
        offset += file.size;
      });
    });
    xhr.upload.addEventListener("load", () => cards.forEach((card) => setProgress(card, 100)));
    xhr.addEventListener("load", () => {
      showQuota(xhr);
      const payload = parseJson(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300 && payload && payload.success) {
        if (single) {
          showImage(cards[0], payload.data);
          return;
        }
        const refused = new Map((payload.data.errors || []).map((e) => [e.index, e]));
        let next = 0;
        cards.forEach((card, i) => {
          if (refused.has(i)) fail(card, refused.get(i).error.message);
          else showImage(card, payload.data.images[next++]);
        });
        return;
      }
      const message = errorMessage(xhr.status, payload, xhr.getResponseHeader("Retry-After"));
      const details = payload && payload.error && Array.isArray(payload.error.details)
        ? new Map(payload.error.details.map((e) => [e.index, e])) : new Map();
      cards.forEach((card, i) => {
        const own = details.get(i);
        fail(card, own && own.error ? own.error.message : message);
      });
    });
    xhr.addEventListener("error", () => cards.forEach((card) => fail(card, errorMessage(0))));
    xhr.addEventListener("abort", () => cards.forEach((card) => fail(card, "The upload was cancelled.")));
    cards.forEach((card) => setProgress(card, 0));
    xhr.send(body);
  }

  // Wiring -----------------------------------------------------------------------------

  fileInput.addEventListener("change", () => {
    handleFiles(fileInput.files);
    fileInput.value = "";
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    handleFiles(fileInput.files);
    fileInput.value = "";
  });

  const isFileDrag = (event) => event.dataTransfer
    && Array.from(event.dataTransfer.types || []).includes("Files");
  let dragDepth = 0;
  // The whole page takes drops, so that a near miss uploads instead of leaving the page.
  document.addEventListener("dragenter", (event) => {
    if (!isFileDrag(event)) return;
    event.preventDefault();
    dragDepth += 1;
    dropzone.classList.add("dragging");
  });
  document.addEventListener("dragover", (event) => {
    if (!isFileDrag(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) dropzone.classList.remove("dragging");
  });
  document.addEventListener("drop", (event) => {
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    dragDepth = 0;
    dropzone.classList.remove("dragging");
    handleFiles(event.dataTransfer.files);
  });

  document.addEventListener("paste", (event) => {
    const data = event.clipboardData;
    if (!data) return;
    let files = Array.from(data.files || []);
    if (!files.length) {
      files = Array.from(data.items || []).filter((item) => item.kind === "file")
        .map((item) => item.getAsFile()).filter(Boolean);
    }
    if (!files.length) return; // text pasted into a field stays text
    event.preventDefault();
    handleFiles(files);
  });

  keyInput.value = storedKey();
  if (keyInput.value) keyBox.open = true;
  keyInput.addEventListener("change", () => {
    storeKey(currentKey());
    refreshLimits();
  });
  forgetKey.addEventListener("click", () => {
    keyInput.value = "";
    storeKey("");
    refreshLimits();
    keyStatus.textContent = "Key forgotten: uploads are anonymous.";
  });
  refreshLimits();
})();
