/* Join the gallery: a 5-second webcam recording, or a video file, or a few photos, with a
 * display name and consent -> POST /api/contributions -> poll its status -> the result.
 *
 * One piece of media is chosen at a time (`state.media`): a recording replaces chosen files
 * and chosen files replace a recording. The submit button stays disabled until there is a
 * display name, media and the consent box is ticked. The deletion code comes back once, in
 * the POST's answer: it is shown at once, with a copy button, before processing ends.
 *
 * Vanilla JS, no dependencies. Server strings are written with textContent only.
 */
(function () {
  "use strict";

  var POLL_MS = 1000;
  var MAX_POLL_FAILURES = 10;
  var CAMERA = { video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" }, audio: false };
  var RECORDER_TYPES = ["video/webm;codecs=vp8", "video/webm;codecs=vp9", "video/webm", "video/mp4"];
  var VIDEO_EXTENSIONS = /\.(mp4|m4v|webm|mov|qt)$/i;
  var IMAGE_EXTENSIONS = /\.(jpe?g|png|gif|bmp|webp|pgm|ppm|tiff?)$/i;

  var el = {};
  var limits = {};
  var state = {
    media: null, // {kind: "recording"|"video"|"photos", files: [{blob, name}], label}
    stream: null, // the camera's MediaStream while it is on
    recorder: null,
    recording: false,
    timer: null, // the countdown's interval
    urls: [], // object URLs to revoke when the media changes
    contribution: null, // the POST's answer
    pollFailures: 0,
    pollTimer: null,
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

  function megabytes(bytes) {
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  function showError(node, message) {
    node.textContent = message || "";
    show(node, Boolean(message));
  }

  function readJson(text) {
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (e) {
      return null;
    }
  }

  function errorMessage(body, status) {
    if (body && body.error && typeof body.error.message === "string" && body.error.message) {
      return body.error.message;
    }
    if (status === 0) return "Could not reach the server. Check your connection and try again.";
    if (status === 413) return "That is too large for this server. Record a shorter video or send fewer photos.";
    if (status === 429) return "Too many requests. Please wait a minute and try again.";
    return "The server refused the request (HTTP " + status + "). Please try again.";
  }

  // --- the form's state: what is still needed --------------------------------------------------

  function displayName() {
    return el.name.value.replace(/\s+/g, " ").trim();
  }

  function missing() {
    var needed = [];
    var name = displayName();
    if (!name) needed.push("a display name");
    else if (name.length > 64) needed.push("a display name of at most 64 characters");
    if (!state.media) needed.push("a recording, a video or photos");
    if (!el.consent.checked) needed.push("your consent (the box above)");
    return needed;
  }

  function refresh() {
    var needed = missing();
    el.submit.disabled = state.busy || state.recording || needed.length > 0;
    el.submitHelp.textContent = needed.length
      ? "Still needed: " + needed.join(", ") + "."
      : "Ready: you can join the gallery.";
    el.chosen.textContent = state.media ? "Ready to send: " + state.media.label + "." : "No video or photos yet.";
    el.chosen.classList.toggle("is-ready", Boolean(state.media));
  }

  function revokeUrls() {
    state.urls.forEach(function (url) {
      URL.revokeObjectURL(url);
    });
    state.urls = [];
  }

  function objectUrl(blob) {
    var url = URL.createObjectURL(blob);
    state.urls.push(url);
    return url;
  }

  /* Forget the chosen media and its previews (keep = "recording" or "files": that input's
   * own preview is being replaced by the caller). */
  function dropMedia(keep) {
    state.media = null;
    revokeUrls();
    el.recording.removeAttribute("src");
    el.fileVideo.removeAttribute("src");
    show(el.recordingFrame, false);
    show(el.fileVideoFrame, false);
    clear(el.thumbs);
    show(el.thumbs, false);
    show(el.recordAgain, false);
    show(el.cameraStart, true);
    show(el.record, true);
    if (keep !== "files") {
      el.files.value = "";
      showError(el.filesError, "");
    }
    refresh();
  }

  // --- the camera and the recording ------------------------------------------------------------

  function recorderType() {
    if (!window.MediaRecorder) return null;
    if (typeof MediaRecorder.isTypeSupported !== "function") return "";
    for (var i = 0; i < RECORDER_TYPES.length; i++) {
      if (MediaRecorder.isTypeSupported(RECORDER_TYPES[i])) return RECORDER_TYPES[i];
    }
    return "";
  }

  function canRecord() {
    return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder);
  }

  function setRecordStatus(text) {
    el.recordStatus.textContent = text || "";
  }

  function startCamera() {
    if (state.stream || state.busy) return Promise.resolve();
    if (!canRecord()) {
      setRecordStatus("This browser cannot record video here. Upload a video or photos instead.");
      return Promise.resolve();
    }
    setRecordStatus("Starting the camera…");
    el.cameraStart.disabled = true;
    return navigator.mediaDevices.getUserMedia(CAMERA).then(
      function (stream) {
        state.stream = stream;
        el.camera.srcObject = stream;
        show(el.cameraFrame, true);
        el.cameraStart.disabled = false;
        el.cameraStart.textContent = "Turn the camera off";
        el.cameraStart.setAttribute("aria-pressed", "true");
        el.record.disabled = false;
        setRecordStatus("The camera is on. Press Record when you are ready.");
        var playing = el.camera.play();
        if (playing && playing.catch) playing.catch(function () {});
      },
      function (error) {
        el.cameraStart.disabled = false;
        var name = error && error.name;
        setRecordStatus(
          name === "NotAllowedError" || name === "SecurityError"
            ? "The camera was not allowed. Allow it in your browser, or upload a video or photos instead."
            : name === "NotFoundError" || name === "OverconstrainedError"
              ? "No camera was found. Upload a video or photos instead."
              : "The camera could not be started. Upload a video or photos instead."
        );
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
    el.camera.srcObject = null;
    show(el.cameraFrame, false);
    el.cameraStart.textContent = "Use my camera";
    el.cameraStart.setAttribute("aria-pressed", "false");
    el.record.disabled = true;
  }

  function toggleCamera() {
    if (state.recording) return;
    if (state.stream) {
      stopCamera();
      setRecordStatus("");
    } else {
      startCamera();
    }
  }

  function showCountdown(left, elapsed, total) {
    el.countdown.textContent = String(left);
    el.cue.textContent = elapsed < total / 2 ? "← Turn slowly to your left" : "Now slowly to your right →";
  }

  function stopCountdown() {
    if (state.timer) window.clearInterval(state.timer);
    state.timer = null;
    show(el.countdown, false);
    show(el.cue, false);
    el.cameraFrame.classList.remove("is-recording");
  }

  function record() {
    if (!state.stream || state.recording || state.busy) return;
    var type = recorderType();
    if (type === null) {
      setRecordStatus("This browser cannot record video here. Upload a video or photos instead.");
      return;
    }
    var recorder;
    try {
      recorder = new MediaRecorder(state.stream, type ? { mimeType: type, videoBitsPerSecond: 2500000 } : undefined);
    } catch (e) {
      setRecordStatus("This browser cannot record video here. Upload a video or photos instead.");
      return;
    }
    var seconds = limits.recordSeconds;
    var chunks = [];
    dropMedia();
    state.recorder = recorder;
    state.recording = true;
    el.record.disabled = true;
    el.cameraStart.disabled = true;
    el.files.disabled = true;
    refresh();
    recorder.ondataavailable = function (event) {
      if (event.data && event.data.size) chunks.push(event.data);
    };
    recorder.onstop = function () {
      stopCountdown();
      el.record.textContent = "Record " + seconds + " seconds";
      state.recording = false;
      state.recorder = null;
      el.files.disabled = false;
      el.cameraStart.disabled = false;
      var mime = (recorder.mimeType || type || "video/webm").split(";")[0];
      var blob = new Blob(chunks, { type: mime });
      stopCamera(); // never film after the recording
      if (!blob.size) {
        setRecordStatus("Nothing was recorded. Try again, or upload a video or photos instead.");
        refresh();
        return;
      }
      var name = "recording." + (mime.indexOf("mp4") >= 0 ? "mp4" : "webm");
      state.media = {
        kind: "recording",
        files: [{ blob: blob, name: name }],
        label: "your " + seconds + "-second recording (" + megabytes(blob.size) + ")",
      };
      el.recording.src = objectUrl(blob);
      show(el.recordingFrame, true);
      show(el.cameraStart, false);
      show(el.record, false);
      show(el.recordAgain, true);
      el.recordAgain.focus();
      setRecordStatus("Recorded. Watch it below, or record again.");
      refresh();
    };
    recorder.onerror = function () {
      setRecordStatus("The recording failed. Try again, or upload a video or photos instead.");
    };

    var started = performance.now();
    var total = seconds * 1000;
    el.cameraFrame.classList.add("is-recording");
    show(el.countdown, true);
    show(el.cue, true);
    showCountdown(seconds, 0, total);
    el.record.textContent = "Recording…";
    setRecordStatus("Recording: turn your head slowly left, then right…");
    recorder.start(1000);
    state.timer = window.setInterval(function () {
      var elapsed = performance.now() - started;
      if (elapsed >= total) {
        window.clearInterval(state.timer);
        state.timer = null;
        if (recorder.state !== "inactive") recorder.stop();
        return;
      }
      showCountdown(Math.max(1, Math.ceil((total - elapsed) / 1000)), elapsed, total);
    }, 100);
  }

  function recordAgain() {
    dropMedia();
    setRecordStatus("");
    startCamera().then(function () {
      if (state.stream) el.record.focus();
    });
  }

  // --- chosen files ------------------------------------------------------------------------------

  function isVideo(file) {
    return /^video\//i.test(file.type) || (!file.type && VIDEO_EXTENSIONS.test(file.name));
  }

  function isImage(file) {
    return /^image\//i.test(file.type) || (!file.type && IMAGE_EXTENSIONS.test(file.name));
  }

  /* The chosen files as media, or an error message. */
  function filesMedia(files) {
    var videos = files.filter(isVideo);
    var images = files.filter(isImage);
    var others = files.filter(function (f) {
      return !isVideo(f) && !isImage(f);
    });
    if (others.length) return { error: "“" + others[0].name + "” is neither a video nor a photo." };
    if (videos.length) {
      if (videos.length > 1 || images.length) {
        return { error: "Choose one video, or photos: not several videos, and not both." };
      }
      var video = videos[0];
      if (video.size > limits.videoMaxBytes) {
        return {
          error: "The video is " + megabytes(video.size) + "; at most " + megabytes(limits.videoMaxBytes) +
            " is accepted. Choose a shorter video (a few seconds: up to 10).",
        };
      }
      return {
        media: {
          kind: "video",
          files: [{ blob: video, name: video.name }],
          label: "the video “" + video.name + "” (" + megabytes(video.size) + ")",
        },
      };
    }
    if (images.length < limits.minPhotos || images.length > limits.maxPhotos) {
      return {
        error: "Choose " + limits.minPhotos + " to " + limits.maxPhotos + " photos (you chose " +
          images.length + "), or one video.",
      };
    }
    var total = 0;
    for (var i = 0; i < images.length; i++) {
      total += images[i].size;
      if (images[i].size > limits.maxImageBytes) {
        return {
          error: "“" + images[i].name + "” is " + megabytes(images[i].size) + "; at most " +
            megabytes(limits.maxImageBytes) + " per photo.",
        };
      }
    }
    if (limits.maxRequestBytes && total > limits.maxRequestBytes - 65536) {
      return {
        error: "Together the photos are " + megabytes(total) +
          ": too much for one upload. Choose fewer or smaller photos.",
      };
    }
    return {
      media: {
        kind: "photos",
        files: images.map(function (f) {
          return { blob: f, name: f.name };
        }),
        label: plural(images.length, "photo", "photos"),
      },
    };
  }

  function chooseFiles() {
    var files = Array.prototype.slice.call(el.files.files || []);
    if (state.stream && !state.recording) stopCamera();
    setRecordStatus("");
    dropMedia("files");
    if (!files.length) {
      showError(el.filesError, "");
      return;
    }
    var chosen = filesMedia(files);
    if (chosen.error) {
      showError(el.filesError, chosen.error);
      refresh();
      return;
    }
    showError(el.filesError, "");
    state.media = chosen.media;
    if (chosen.media.kind === "video") {
      el.fileVideo.src = objectUrl(chosen.media.files[0].blob);
      show(el.fileVideoFrame, true);
    } else {
      chosen.media.files.forEach(function (file, i) {
        var item = document.createElement("li");
        var img = document.createElement("img");
        img.alt = "Photo " + (i + 1) + ": " + file.name;
        img.src = objectUrl(file.blob);
        item.appendChild(img);
        el.thumbs.appendChild(item);
      });
      show(el.thumbs, true);
    }
    refresh();
  }

  // --- sending, following, the result ------------------------------------------------------------

  function setProgress(status, progress) {
    var share = Math.max(0, Math.min(1, Number(progress) || 0));
    if (status === "sending") {
      if (progress === null) el.progress.removeAttribute("value");
      else el.progress.value = Math.round(share * 100);
      el.progressText.textContent = progress === null
        ? "Sending…"
        : "Sending… " + Math.round(share * 100) + "%";
      return;
    }
    if (status === "queued") {
      el.progress.removeAttribute("value");
      el.progressText.textContent = "Waiting for its turn…";
      return;
    }
    el.progress.value = Math.round(share * 100);
    el.progressText.textContent = "Looking for your face: " + Math.round(share * 100) + "%";
  }

  function focusHeading(node) {
    if (node && node.focus) node.focus({ preventScroll: true });
    if (node && node.scrollIntoView) node.scrollIntoView({ block: "nearest" });
  }

  function setBusy(busy) {
    state.busy = busy;
    el.name.disabled = busy;
    el.consent.disabled = busy;
    el.files.disabled = busy;
    el.cameraStart.disabled = busy;
    if (busy) el.record.disabled = true;
    refresh();
  }

  function submit(event) {
    if (event) event.preventDefault();
    if (state.busy || state.recording || missing().length) {
      refresh();
      return;
    }
    if (state.stream) stopCamera();
    var media = state.media;
    var form = new FormData();
    form.append("display_name", displayName());
    form.append("consent", "true");
    var field = media.kind === "photos" ? "photo" : "video";
    media.files.forEach(function (file) {
      form.append(field, file.blob, file.name);
    });
    showError(el.error, "");
    setBusy(true);
    show(el.progressCard, true);
    show(el.resultCard, false);
    setProgress("sending", null);
    focusHeading(el.progressTitle);

    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/contributions");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable && e.total) setProgress("sending", e.loaded / e.total);
    };
    xhr.onload = function () {
      var body = readJson(xhr.responseText);
      if (xhr.status === 202 && body && typeof body.id === "string") {
        accepted(body);
      } else {
        failed(errorMessage(body, xhr.status));
      }
    };
    xhr.onerror = function () {
      failed(errorMessage(null, 0));
    };
    xhr.send(form);
  }

  /* The POST was refused: back to the form, with the server's message. */
  function failed(message) {
    setBusy(false);
    show(el.progressCard, false);
    show(el.formCard, true);
    showError(el.error, message);
    focusHeading(el.joinTitle);
  }

  function accepted(body) {
    state.contribution = body;
    state.pollFailures = 0;
    show(el.formCard, false);
    el.deletionCode.textContent = typeof body.deletion_code === "string" ? body.deletion_code : "";
    el.copyStatus.textContent = "";
    show(el.codeCard, Boolean(el.deletionCode.textContent));
    follow(body);
  }

  function statusUrl(body) {
    var url = body.status_url;
    if (typeof url === "string" && /^\/api\/contributions\/[0-9A-Za-z_-]+$/.test(url)) return url;
    return "/api/contributions/" + encodeURIComponent(body.id);
  }

  function follow(body) {
    if (body.status === "enrolled" || body.status === "refused") {
      finished(body);
      return;
    }
    setProgress(body.status, body.progress);
    state.pollTimer = window.setTimeout(poll, POLL_MS);
  }

  function poll() {
    state.pollTimer = null;
    var url = statusUrl(state.contribution);
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        return response.text().then(function (text) {
          return { status: response.status, body: readJson(text) };
        });
      }, function () {
        return { status: 0, body: null };
      })
      .then(function (res) {
        if (res.status === 200 && res.body && typeof res.body.status === "string") {
          state.pollFailures = 0;
          follow(res.body);
          return;
        }
        if (res.status === 404) {
          finished({ status: "gone" });
          return;
        }
        state.pollFailures += 1;
        if (state.pollFailures >= MAX_POLL_FAILURES) {
          finished({ status: "lost", message: errorMessage(res.body, res.status) });
          return;
        }
        el.progressText.textContent = "The server did not answer; trying again…";
        state.pollTimer = window.setTimeout(poll, POLL_MS);
      });
  }

  function finished(body) {
    state.busy = false;
    el.name.disabled = false;
    el.consent.disabled = false;
    el.files.disabled = false;
    el.cameraStart.disabled = false;
    show(el.progressCard, false);
    var name = (state.contribution && state.contribution.display_name) || displayName();
    var enrolled = body.status === "enrolled";
    var media = body.media || (state.contribution && state.contribution.media);
    var sourcesGone =
      media === "video"
        ? "the video is deleted"
        : media === "photos"
          ? "the photos are deleted"
          : "the video and photos are deleted";
    el.resultCard.className = "card result-card is-" + body.status;
    show(el.tryIt, enrolled);
    show(el.tryAgain, !enrolled);
    if (enrolled && body.approved === false) {
      el.resultKind.textContent = "Waiting for approval";
      el.resultTitle.textContent = "Almost there, " + name;
      el.resultText.textContent =
        "Your face was taken in (" + plural(Number(body.crops) || 0, "face crop", "face crops") +
        " kept; " + sourcesGone + "). An admin of this site checks new people before" +
        " they join the gallery; until then you are not shown to anyone.";
      show(el.tryAgain, false);
    } else if (enrolled) {
      el.resultKind.textContent = "Enrolled";
      el.resultTitle.textContent = "You are in the gallery, " + name;
      el.resultText.textContent =
        "Enrolled: you are in the gallery. Others may get you as a lookalike, and a photo of you is" +
        " now answered with your name. We kept " + plural(Number(body.crops) || 0, "face crop", "face crops") +
        " and their embeddings; " + sourcesGone + ".";
    } else if (body.status === "refused") {
      el.resultKind.textContent = "Refused";
      el.resultTitle.textContent = "We could not add you";
      el.resultText.textContent =
        "Refused: " + (body.reason || "the video or photos could not be used.") +
        " Nothing of your face was kept.";
    } else if (body.status === "gone") {
      el.resultKind.textContent = "Deleted";
      el.resultTitle.textContent = "This contribution no longer exists";
      el.resultText.textContent = "It was deleted while it was being processed: nothing of it is kept.";
    } else {
      el.resultKind.textContent = "No answer";
      el.resultTitle.textContent = "We lost track of your contribution";
      el.resultText.textContent =
        (body.message || "The server did not answer.") +
        " It may still be processed: keep your deletion code, and delete it on the Forget me page if you wish.";
    }
    el.codeHelp.textContent = "";
    el.codeHelp.appendChild(
      document.createTextNode(
        body.status === "refused"
          ? "Nothing of your face was kept. The code still deletes your display name and the" +
            " reason from our records: paste it into the "
          : "To delete everything, paste the code into the "
      )
    );
    var link = document.createElement("a");
    link.href = "/forget";
    link.textContent = "Forget me";
    el.codeHelp.appendChild(link);
    el.codeHelp.appendChild(document.createTextNode(" page."));
    show(el.resultCard, true);
    focusHeading(el.resultTitle);
  }

  function tryAgain() {
    if (state.pollTimer) window.clearTimeout(state.pollTimer);
    state.pollTimer = null;
    state.contribution = null;
    show(el.resultCard, false);
    show(el.progressCard, false);
    show(el.formCard, true);
    showError(el.error, "");
    dropMedia();
    setRecordStatus("");
    refresh();
    focusHeading(el.joinTitle);
  }

  // --- copying the deletion code -----------------------------------------------------------------

  function selectCode() {
    var range = document.createRange();
    range.selectNodeContents(el.deletionCode);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function copyCode() {
    var code = el.deletionCode.textContent;
    if (!code) return;
    var done = function () {
      el.copyStatus.textContent = "Copied. Paste it somewhere safe (a password manager, a note).";
    };
    var fallback = function () {
      selectCode();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (e) {
        ok = false;
      }
      el.copyStatus.textContent = ok
        ? "Copied. Paste it somewhere safe (a password manager, a note)."
        : "Could not copy: the code is selected, copy it with your keyboard or write it down.";
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(code).then(done, fallback);
    } else {
      fallback();
    }
  }

  // --- start --------------------------------------------------------------------------------------

  function number(name, fallback) {
    var value = Number(document.body.getAttribute("data-" + name));
    return value > 0 ? value : fallback;
  }

  function init() {
    [
      ["name", "display-name"],
      ["consent", "consent"],
      ["submit", "submit"],
      ["submitHelp", "submit-help"],
      ["form", "join-form"],
      ["formCard", "form-card"],
      ["joinTitle", "join-title"],
      ["error", "error"],
      ["chosen", "chosen"],
      ["camera", "camera"],
      ["cameraFrame", "camera-frame"],
      ["cameraStart", "camera-start"],
      ["record", "record"],
      ["recordAgain", "record-again"],
      ["recordStatus", "record-status"],
      ["recording", "recording"],
      ["recordingFrame", "recording-frame"],
      ["countdown", "countdown"],
      ["cue", "cue"],
      ["files", "files"],
      ["filesError", "files-error"],
      ["thumbs", "thumbs"],
      ["fileVideo", "file-video"],
      ["fileVideoFrame", "file-video-frame"],
      ["progressCard", "progress-card"],
      ["progressTitle", "progress-title"],
      ["progress", "progress"],
      ["progressText", "progress-text"],
      ["codeCard", "code-card"],
      ["deletionCode", "deletion-code"],
      ["copyCode", "copy-code"],
      ["copyStatus", "copy-status"],
      ["codeHelp", "code-help"],
      ["resultCard", "result-card"],
      ["resultKind", "result-kind"],
      ["resultTitle", "result-title"],
      ["resultText", "result-text"],
      ["tryIt", "try-it"],
      ["tryAgain", "try-again"],
    ].forEach(function (pair) {
      el[pair[0]] = $(pair[1]);
    });
    limits = {
      minPhotos: number("min-photos", 3),
      maxPhotos: number("max-photos", 20),
      maxImageBytes: number("max-image-bytes", 15 * 1024 * 1024),
      videoMaxBytes: number("video-max-bytes", 60 * 1024 * 1024),
      maxRequestBytes: number("max-request-bytes", 0),
      recordSeconds: number("record-seconds", 5),
    };
    el.record.textContent = "Record " + limits.recordSeconds + " seconds";
    if (!canRecord()) {
      el.cameraStart.disabled = true;
      setRecordStatus("This browser cannot record video here. Upload a video or photos instead.");
    }

    el.name.addEventListener("input", refresh);
    el.consent.addEventListener("change", refresh);
    el.files.addEventListener("change", chooseFiles);
    el.cameraStart.addEventListener("click", toggleCamera);
    el.record.addEventListener("click", record);
    el.recordAgain.addEventListener("click", recordAgain);
    el.form.addEventListener("submit", submit);
    el.copyCode.addEventListener("click", copyCode);
    el.tryAgain.addEventListener("click", tryAgain);
    window.addEventListener("pagehide", function () {
      if (state.recorder && state.recorder.state !== "inactive") state.recorder.stop();
      stopCamera();
    });
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
