/* The public page: upload or webcam -> POST /api/predictions -> render the answer.
 *
 * Vanilla JS, no dependencies. Every string that comes from the server is written with
 * textContent (never innerHTML), and only same-origin or data:image URLs are put into <img>.
 */
(function () {
  "use strict";

  var BURST_FRAMES = 5;
  var BURST_GAP_MS = 200;
  var MAX_FRAME_SIDE = 640;
  var JPEG_QUALITY = 0.9;

  var el = {};
  var state = {
    photos: null, // [{blob, name}] of the last prediction request, to repeat with face_index
    prediction: null, // the last successful answer
    stream: null, // the webcam MediaStream while the camera is on
    busy: false,
  };

  function $(id) {
    return document.getElementById(id);
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function percent(p) {
    var value = Math.max(0, Math.min(1, Number(p) || 0)) * 100;
    return value.toFixed(1) + "%";
  }

  /* Only URLs of this site, or inline images, may become an <img> src. */
  function safeImageUrl(url) {
    if (typeof url !== "string" || !url) return null;
    if (/^data:image\/(png|jpeg|gif|webp|bmp);base64,/i.test(url)) return url;
    if (url.charAt(0) === "/" && url.charAt(1) !== "/") return url;
    try {
      var parsed = new URL(url, window.location.href);
      if (parsed.origin === window.location.origin) return parsed.href;
    } catch (e) {
      /* not a URL */
    }
    return null;
  }

  function setImage(img, url) {
    var safe = safeImageUrl(url);
    if (safe) {
      img.src = safe;
      img.hidden = false;
    } else {
      img.removeAttribute("src");
      img.hidden = true;
    }
    return Boolean(safe);
  }

  // --- status and errors ---------------------------------------------------------------------

  function setStatus(text) {
    el.status.textContent = text || "";
  }

  function showError(message, options) {
    var hideResult = !options || options.hideResult !== false;
    el.error.textContent = message;
    show(el.error, true);
    if (hideResult) {
      show(el.result, false);
      state.prediction = null;
    }
  }

  function clearError() {
    el.error.textContent = "";
    show(el.error, false);
  }

  /* Parse a JSON body if there is one; never throws. */
  function readJson(response) {
    return response.text().then(function (text) {
      if (!text) return null;
      try {
        return JSON.parse(text);
      } catch (e) {
        return null;
      }
    });
  }

  function errorMessage(body, response) {
    if (body && body.error && typeof body.error.message === "string" && body.error.message) {
      return body.error.message;
    }
    if (response.status === 413) return "That photo is too large for this server.";
    if (response.status === 429) return "Too many requests. Please wait a minute and try again.";
    return "The server refused the request (HTTP " + response.status + "). Please try again.";
  }

  var NETWORK_ERROR = "Could not reach the server. Check your connection and try again.";

  /* fetch + JSON; resolves {ok, status, body, message} and never rejects. */
  function request(url, options) {
    var opts = options || {};
    opts.headers = opts.headers || {};
    opts.headers.Accept = "application/json";
    opts.credentials = "same-origin";
    return fetch(url, opts).then(
      function (response) {
        return readJson(response).then(function (body) {
          return {
            ok: response.ok,
            status: response.status,
            body: body,
            message: response.ok ? "" : errorMessage(body, response),
          };
        });
      },
      function () {
        return { ok: false, status: 0, body: null, message: NETWORK_ERROR };
      }
    );
  }

  function setBusy(busy) {
    state.busy = busy;
    el.fileInput.disabled = busy;
    el.capture.disabled = busy || !state.stream;
    el.dropZone.classList.toggle("is-busy", busy);
    el.result.setAttribute("aria-busy", busy ? "true" : "false");
    var pickers = el.facePicker.querySelectorAll("button");
    for (var i = 0; i < pickers.length; i++) pickers[i].disabled = busy;
  }

  // --- prediction ----------------------------------------------------------------------------

  function predict(photos, faceIndex) {
    if (state.busy) return Promise.resolve();
    state.photos = photos;
    var form = new FormData();
    photos.forEach(function (photo) {
      form.append("photo", photo.blob, photo.name);
    });
    form.append("client", "web");
    form.append("consent", el.consent.checked ? "true" : "false");
    if (faceIndex !== null && faceIndex !== undefined) {
      form.append("face_index", String(faceIndex));
    }
    clearError();
    setBusy(true);
    setStatus(photos.length > 1 ? "Looking for your face in " + photos.length + " frames…" : "Looking for a face…");
    return request("/api/predictions", { method: "POST", body: form }).then(function (res) {
      setBusy(false);
      if (!res.ok) {
        setStatus("");
        showError(res.message);
        return;
      }
      render(res.body || {});
    });
  }

  function render(data) {
    state.prediction = data;
    var strong = !data.no_strong_match && data.label;
    var best = data.label || data.best_label || "";

    setImage(el.faceCrop, data.face_crop);

    if (strong) {
      el.matchName.textContent = data.label;
      el.matchProbability.textContent = percent(data.probability) + " probability";
      el.noMatch.textContent = "";
      show(el.noMatch, false);
      show(el.matchCard, true);
    } else {
      el.matchName.textContent = "";
      el.matchProbability.textContent = "";
      show(el.matchCard, false);
      el.noMatch.textContent = data.best_label
        ? "No strong match. The closest is " + data.best_label + ", but not close enough to call it."
        : "No strong match.";
      show(el.noMatch, true);
    }
    var hasClassImage = setImage(el.matchImage, data.class_image_url);
    el.matchImage.alt = best ? "Reference photo of " + best : "";
    el.matchCaption.textContent = best ? (strong ? best : "Closest: " + best) : "Reference photo";
    show(el.matchFigure, hasClassImage);

    renderFacePicker(data);
    renderProbabilities(data.probabilities || []);
    renderNearest(data.nearest || []);
    resetFeedback(data.probabilities || []);
    renderDeletion(data);

    var meta = [];
    if (data.model_version) meta.push("Model " + data.model_version);
    if (typeof data.latency_ms === "number") meta.push(Math.round(data.latency_ms) + " ms");
    if (data.frames_used > 1) meta.push(data.frames_used + " frames averaged");
    var skipped = (data.skipped_frames || []).length;
    if (skipped) meta.push(skipped + (skipped === 1 ? " frame" : " frames") + " without a face skipped");
    el.resultMeta.textContent = meta.join(" · ");

    show(el.result, true);
    revealResult();
    setStatus(
      strong
        ? "Best match: " + data.label + ", " + percent(data.probability) + "."
        : "No strong match" + (data.best_label ? "; closest: " + data.best_label + "." : ".")
    );
  }

  /* On narrow screens the result sits below the inputs: bring its top into view. */
  function revealResult() {
    var top = el.result.getBoundingClientRect().top;
    if (top > window.innerHeight * 0.8 && el.result.scrollIntoView) {
      var still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      el.result.scrollIntoView({ behavior: still ? "auto" : "smooth", block: "start" });
    }
  }

  function renderFacePicker(data) {
    clear(el.facePicker);
    var count = Number(data.faces_found) || 0;
    if (count <= 1) {
      show(el.facePickerBox, false);
      return;
    }
    for (var i = 0; i < count; i++) {
      var button = make("button", "button chip", "Face " + (i + 1));
      button.type = "button";
      button.setAttribute("data-face-index", String(i));
      button.setAttribute("aria-pressed", i === data.face_index ? "true" : "false");
      button.addEventListener("click", onPickFace);
      el.facePicker.appendChild(button);
    }
    show(el.facePickerBox, true);
  }

  function onPickFace(event) {
    var index = Number(event.currentTarget.getAttribute("data-face-index"));
    if (!state.photos || !isFinite(index)) return;
    predict(state.photos, index);
  }

  function renderProbabilities(rows) {
    clear(el.probabilities);
    rows.forEach(function (row) {
      var li = make("li", "prob-row");
      li.setAttribute("data-label", String(row.label));
      var label = make("span", "prob-label", row.label);
      var track = make("span", "prob-track");
      track.setAttribute("aria-hidden", "true");
      var bar = make("span", "prob-bar");
      bar.style.width = percent(row.probability);
      track.appendChild(bar);
      var value = make("span", "prob-value", percent(row.probability));
      li.appendChild(label);
      li.appendChild(track);
      li.appendChild(value);
      el.probabilities.appendChild(li);
    });
  }

  function renderNearest(items) {
    clear(el.nearest);
    items.forEach(function (item) {
      var url = safeImageUrl(item.url);
      if (!url) return;
      var figure = make("figure", "nearest-item");
      figure.setAttribute("role", "listitem");
      var img = make("img");
      img.src = url;
      img.alt = "Reference photo of " + item.label;
      img.loading = "lazy";
      img.decoding = "async";
      var similarity = Number(item.similarity);
      var caption = make("figcaption");
      caption.appendChild(make("span", "nearest-label", item.label));
      caption.appendChild(
        make("span", "nearest-sim", "similarity " + (isFinite(similarity) ? similarity.toFixed(2) : "?"))
      );
      figure.appendChild(img);
      figure.appendChild(caption);
      el.nearest.appendChild(figure);
    });
  }

  // --- feedback ------------------------------------------------------------------------------

  function resetFeedback(rows) {
    el.like.disabled = false;
    el.dislike.disabled = false;
    el.like.setAttribute("aria-pressed", "false");
    el.dislike.setAttribute("aria-pressed", "false");
    el.feedbackStatus.textContent = "";
    show(el.correction, false);
    clear(el.correctionLabel);
    el.correctionLabel.appendChild(make("option", null, "Choose…"));
    el.correctionLabel.options[0].value = "";
    rows
      .map(function (row) {
        return String(row.label);
      })
      .sort()
      .forEach(function (name) {
        var option = make("option", null, name);
        option.value = name;
        el.correctionLabel.appendChild(option);
      });
  }

  function sendFeedback(kind, label) {
    var prediction = state.prediction;
    if (!prediction || !prediction.id) return Promise.resolve();
    var payload = { feedback: kind };
    if (label) payload.label = label;
    el.like.disabled = true;
    el.dislike.disabled = true;
    el.feedbackStatus.textContent = "Sending…";
    var url = "/api/predictions/" + encodeURIComponent(prediction.id) + "/feedback";
    return request(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    }).then(function (res) {
      if (state.prediction !== prediction) return; // a newer result replaced this one
      el.like.disabled = false;
      el.dislike.disabled = false;
      if (!res.ok) {
        el.feedbackStatus.textContent = "";
        showError(res.message, { hideResult: false });
        return;
      }
      clearError();
      el.like.setAttribute("aria-pressed", kind === "like" ? "true" : "false");
      el.dislike.setAttribute("aria-pressed", kind === "dislike" ? "true" : "false");
      if (kind === "like") {
        show(el.correction, false);
        el.feedbackStatus.textContent = "Thanks for your feedback!";
      } else if (label) {
        show(el.correction, false);
        el.feedbackStatus.textContent = "Thanks for your feedback! We noted " + label + ".";
      } else {
        show(el.correction, true);
        el.feedbackStatus.textContent = "Thanks for your feedback! You can tell us who it should have been.";
      }
    });
  }

  // --- consent and deletion ------------------------------------------------------------------

  function renderDeletion(data) {
    el.deletionStatus.textContent = "";
    if (data.deletion_token && data.id) {
      el.deletionTitle.textContent = "Your photo was kept";
      el.predictionId.textContent = data.id;
      el.deletionToken.textContent = data.deletion_token;
      el.deletePhoto.disabled = false;
      show(el.deletionHelp, true);
      show(el.deletionTokenLine, true);
      show(el.deletePhoto, true);
      show(el.deletion, true);
    } else {
      el.predictionId.textContent = "";
      el.deletionToken.textContent = "";
      show(el.deletion, false);
    }
  }

  function deletePhoto() {
    var prediction = state.prediction;
    if (!prediction || !prediction.id || !prediction.deletion_token) return Promise.resolve();
    el.deletePhoto.disabled = true;
    el.deletionStatus.textContent = "Deleting…";
    return request("/api/predictions/" + encodeURIComponent(prediction.id), {
      method: "DELETE",
      headers: { "X-Deletion-Token": prediction.deletion_token },
    }).then(function (res) {
      if (!res.ok) {
        el.deletePhoto.disabled = false;
        el.deletionStatus.textContent = "";
        showError(res.message, { hideResult: false });
        return;
      }
      clearError();
      prediction.deletion_token = null;
      show(el.deletePhoto, false);
      show(el.deletionHelp, false);
      show(el.deletionTokenLine, false);
      el.deletionTitle.textContent = "Your photo was deleted";
      el.deletionStatus.textContent = "Your photo was deleted. Only the anonymous answer remains.";
    });
  }

  // --- upload --------------------------------------------------------------------------------

  function megabytes(bytes) {
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  function predictFile(file) {
    if (!file) return;
    var limit = Number(document.body.getAttribute("data-max-image-bytes")) || 0;
    if (limit > 0 && file.size > limit) {
      // The server would refuse it too; say so before sending megabytes for nothing.
      showError(
        "This photo is " + megabytes(file.size) + "; at most " + megabytes(limit) +
          " is accepted. Choose a smaller photo."
      );
      return;
    }
    var name = file.name || "photo";
    predict([{ blob: file, name: name }], null);
  }

  function onFileChosen() {
    var file = el.fileInput.files && el.fileInput.files[0];
    predictFile(file);
    el.fileInput.value = ""; // choosing the same file again fires change again
  }

  function hasFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    if (!types) return false;
    for (var i = 0; i < types.length; i++) if (types[i] === "Files") return true;
    return false;
  }

  function onDragOver(event) {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    el.dropZone.classList.add("is-over");
  }

  function onDragLeave() {
    el.dropZone.classList.remove("is-over");
  }

  function onDrop(event) {
    event.preventDefault();
    el.dropZone.classList.remove("is-over");
    if (state.busy) return;
    var files = event.dataTransfer && event.dataTransfer.files;
    if (!files || !files.length) {
      showError("Drop a photo file (JPEG, PNG, GIF or BMP).", { hideResult: false });
      return;
    }
    predictFile(files[0]);
  }

  // --- webcam --------------------------------------------------------------------------------

  function cameraErrorMessage(error) {
    var name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "Camera access was refused. Allow the camera in your browser's site settings, or upload a photo instead.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") {
      return "No camera was found. Connect a camera, or upload a photo instead.";
    }
    if (name === "NotReadableError" || name === "AbortError") {
      return "The camera is busy in another application. Close it there and try again.";
    }
    return "The camera could not be started. Upload a photo instead.";
  }

  function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError(
        window.isSecureContext
          ? "This browser cannot use a camera. Upload a photo instead."
          : "The camera only works over HTTPS. Upload a photo instead.",
        { hideResult: false }
      );
      return Promise.resolve();
    }
    el.webcamStart.disabled = true;
    setStatus("Starting the camera…");
    var constraints = {
      audio: false,
      video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } },
    };
    return navigator.mediaDevices.getUserMedia(constraints).then(
      function (stream) {
        state.stream = stream;
        el.video.srcObject = stream;
        show(el.videoFrame, true);
        var played = el.video.play();
        if (played && played.catch) played.catch(function () {});
        el.webcamStart.disabled = false;
        el.webcamStart.textContent = "Stop camera";
        el.webcamStart.setAttribute("aria-pressed", "true");
        el.capture.disabled = state.busy;
        clearError();
        setStatus("Camera on. Look at the camera and press “Take photo”.");
      },
      function (error) {
        el.webcamStart.disabled = false;
        setStatus("");
        showError(cameraErrorMessage(error), { hideResult: false });
      }
    );
  }

  function stopCamera() {
    if (state.stream) {
      state.stream.getTracks().forEach(function (track) {
        track.stop();
      });
    }
    state.stream = null;
    el.video.srcObject = null;
    show(el.videoFrame, false);
    el.capture.disabled = true;
    el.webcamStart.textContent = "Use my camera";
    el.webcamStart.setAttribute("aria-pressed", "false");
    setStatus("Camera off.");
  }

  function grabFrame(canvas) {
    var video = el.video;
    var w = video.videoWidth;
    var h = video.videoHeight;
    if (!w || !h) return Promise.resolve(null);
    var scale = Math.min(1, MAX_FRAME_SIDE / Math.max(w, h));
    canvas.width = Math.round(w * scale);
    canvas.height = Math.round(h * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return new Promise(function (resolve) {
      canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY);
    });
  }

  function wait(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  function capture() {
    if (!state.stream || state.busy) return Promise.resolve();
    var canvas = document.createElement("canvas");
    var frames = [];
    setBusy(true);
    clearError();
    show(el.captureCount, true);
    var chain = Promise.resolve();
    for (var i = 0; i < BURST_FRAMES; i++) {
      (function (n) {
        chain = chain
          .then(function () {
            return n === 0 ? null : wait(BURST_GAP_MS);
          })
          .then(function () {
            el.captureCount.textContent = String(n + 1);
            setStatus("Taking photo " + (n + 1) + " of " + BURST_FRAMES + "…");
            return grabFrame(canvas);
          })
          .then(function (blob) {
            if (blob) frames.push({ blob: blob, name: "frame-" + (n + 1) + ".jpg" });
          });
      })(i);
    }
    return chain.then(function () {
      show(el.captureCount, false);
      setBusy(false);
      if (!frames.length) {
        setStatus("");
        showError("The camera has not delivered a picture yet. Wait a moment and try again.", {
          hideResult: false,
        });
        return;
      }
      return predict(frames, null);
    });
  }

  // --- wiring --------------------------------------------------------------------------------

  function init() {
    [
      ["fileInput", "file-input"],
      ["dropZone", "drop-zone"],
      ["consent", "consent"],
      ["webcamStart", "webcam-start"],
      ["capture", "webcam-capture"],
      ["video", "video"],
      ["videoFrame", "video-frame"],
      ["captureCount", "capture-count"],
      ["status", "status"],
      ["error", "error"],
      ["result", "result"],
      ["faceCrop", "face-crop"],
      ["matchCard", "match-card"],
      ["matchName", "match-name"],
      ["matchProbability", "match-probability"],
      ["matchFigure", "match-figure"],
      ["matchImage", "match-image"],
      ["matchCaption", "match-caption"],
      ["noMatch", "no-match"],
      ["facePickerBox", "face-picker-box"],
      ["facePicker", "face-picker"],
      ["probabilities", "probabilities"],
      ["nearest", "nearest"],
      ["like", "like"],
      ["dislike", "dislike"],
      ["correction", "correction"],
      ["correctionLabel", "correction-label"],
      ["sendCorrection", "send-correction"],
      ["feedbackStatus", "feedback-status"],
      ["deletion", "deletion"],
      ["predictionId", "prediction-id"],
      ["deletionToken", "deletion-token"],
      ["deletePhoto", "delete-photo"],
      ["deletionStatus", "deletion-status"],
      ["deletionTitle", "deletion-title"],
      ["deletionHelp", "deletion-help"],
      ["deletionTokenLine", "deletion-token-line"],
      ["resultMeta", "result-meta"],
    ].forEach(function (pair) {
      el[pair[0]] = $(pair[1]);
    });

    el.consent.checked = false; // never carried over by the browser's form restore

    el.fileInput.addEventListener("change", onFileChosen);
    el.dropZone.addEventListener("dragenter", onDragOver);
    el.dropZone.addEventListener("dragover", onDragOver);
    el.dropZone.addEventListener("dragleave", onDragLeave);
    el.dropZone.addEventListener("drop", onDrop);
    // A photo dropped next to the zone must not make the browser navigate away to it.
    window.addEventListener("dragover", function (event) {
      if (hasFiles(event)) event.preventDefault();
    });
    window.addEventListener("drop", function (event) {
      if (hasFiles(event)) event.preventDefault();
    });

    el.webcamStart.addEventListener("click", function () {
      if (state.stream) stopCamera();
      else startCamera();
    });
    el.capture.addEventListener("click", capture);

    el.like.addEventListener("click", function () {
      sendFeedback("like");
    });
    el.dislike.addEventListener("click", function () {
      sendFeedback("dislike");
    });
    el.sendCorrection.addEventListener("click", function () {
      var label = el.correctionLabel.value;
      if (label) sendFeedback("dislike", label);
      else el.correctionLabel.focus();
    });
    el.deletePhoto.addEventListener("click", deletePhoto);

    el.faceCrop.addEventListener("error", function () {
      el.faceCrop.hidden = true;
    });
    el.matchImage.addEventListener("error", function () {
      show(el.matchFigure, false);
    });
    window.addEventListener("pagehide", function () {
      if (state.stream) stopCamera();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
