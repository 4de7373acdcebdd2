/* The public page: upload or webcam -> POST /api/predictions -> render the answer.
 *
 * Where the page says so (data-direct-uploads: photos go straight to S3), a chosen photo is
 * first PUT to the URL that POST /api/uploads gives, then answered by its upload key.
 *
 * Three views, one at a time: the photo controls ("input"), the answer ("result") and
 * "can't judge this photo" ("cannot", a 422 face.* error). The answer names who the face is
 * ("This is X") or whom it resembles ("You look like X", "Between X and Y"), with the
 * visitor's face beside each lookalike's closest reference photo.
 *
 * A visit: each answer carries a signed `visit` token; "Add another photo of me" sends it
 * with the next photo so both are answered together. It lives only in `state.visit` (never
 * in storage or cookies) and is dropped by "Try another photo" / "Start over".
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
  var SAVE_NAME = "lookalike-result.png";

  var el = {};
  var state = {
    photos: null, // [{blob, name}] of the last request, to ask again for another face
    frame: 0, // index in `photos` of the frame the answer's faces were found in
    sentVisit: null, // the visit token sent with `photos` (asking again sends the same one)
    visit: null, // the latest answer's visit token: sent by "Add another photo of me"
    mode: "new", // input view: "new" (a new visit) or "add" (another photo of the same visitor)
    view: "input",
    prediction: null, // the last successful answer
    stream: null, // the webcam MediaStream while the camera is on
    cameraWasOn: false, // the camera was on when an answer replaced the controls
    busy: false,
    previewUrls: {}, // object URL of each photo preview <img> (by id), revoked when replaced
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

  function clamp01(x) {
    return Math.max(0, Math.min(1, Number(x) || 0));
  }

  function percent(p) {
    return (clamp01(p) * 100).toFixed(1) + "%";
  }

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  function capitalise(text) {
    text = String(text || "");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  /* Only URLs of this site, or inline images, may become an <img> src. */
  function safeImageUrl(url) {
    if (typeof url !== "string" || !url) return null;
    if (/^data:image\/(png|jpeg|gif|webp|bmp);base64,/i.test(url)) return url;
    if (/^blob:/i.test(url) && url.indexOf("blob:" + window.location.origin + "/") === 0) return url;
    if (url.charAt(0) === "/" && url.charAt(1) !== "/") return url;
    try {
      var parsed = new URL(url, window.location.href);
      if (parsed.origin === window.location.origin) return parsed.href;
    } catch (e) {
      /* not a URL */
    }
    return null;
  }

  // --- status, errors and views ------------------------------------------------------------

  function setStatus(text) {
    el.status.textContent = text || "";
  }

  function showError(message) {
    el.error.textContent = message;
    show(el.error, true);
  }

  function clearError() {
    el.error.textContent = "";
    show(el.error, false);
  }

  function canGoBack() {
    return Boolean(state.prediction && state.visit);
  }

  /* Show one of the three views; the others are hidden. */
  function showView(view) {
    state.view = view;
    show(el.inputCard, view === "input");
    show(el.cannot, view === "cannot");
    show(el.result, view === "result");
    if (view !== "input" && state.stream) {
      // Never film someone who is no longer looking at the preview.
      stopCamera(true);
      state.cameraWasOn = true;
    }
  }

  /* Bring a view's top into sight (the page may have been scrolled to the camera). */
  function reveal(node, focusTarget) {
    var top = node.getBoundingClientRect().top;
    if ((top < 0 || top > window.innerHeight * 0.6) && node.scrollIntoView) {
      var still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      node.scrollIntoView({ behavior: still ? "auto" : "smooth", block: "start" });
    }
    if (focusTarget && focusTarget.focus) focusTarget.focus({ preventScroll: true });
  }

  /* The photo controls: for a new visitor ("new": the visit is dropped) or for another photo
   * of the same one ("add": the next photo goes out with the visit token). */
  function enterInput(mode) {
    if (state.busy) return;
    if (mode === "new") state.visit = null;
    state.mode = mode === "add" && state.visit ? "add" : "new";
    var adding = state.mode === "add";
    var looks = adding && state.prediction && state.prediction.answer
      ? Number(state.prediction.answer.looks) || 1
      : 1;
    el.inputTitle.textContent = adding ? "Add another photo of you" : "Your photo";
    el.addNote.textContent = adding
      ? "We answer it together with your " + plural(looks, "earlier photo", "earlier photos") +
        ". Choose a photo or use your camera."
      : "";
    show(el.addNote, adding);
    show(el.addActions, adding);
    clearError();
    setStatus("");
    showView("input");
    reveal(el.inputCard, el.inputTitle);
    if (state.cameraWasOn) {
      state.cameraWasOn = false;
      startCamera();
    }
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

  /* fetch + JSON; resolves {ok, status, body, message, error} and never rejects. */
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
            error: body && body.error && typeof body.error === "object" ? body.error : null,
            message: response.ok ? "" : errorMessage(body, response),
          };
        });
      },
      function () {
        return { ok: false, status: 0, body: null, error: null, message: NETWORK_ERROR };
      }
    );
  }

  function setBusy(busy) {
    state.busy = busy;
    el.fileInput.disabled = busy;
    el.capture.disabled = busy || !state.stream;
    el.dropZone.classList.toggle("is-busy", busy);
    el.result.setAttribute("aria-busy", busy ? "true" : "false");
    var buttons = el.result.querySelectorAll(".face-thumb, .face-box, #try-another, #add-photo");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = busy;
  }

  // --- prediction ----------------------------------------------------------------------------

  function isCannotJudge(res) {
    var error = res.error;
    if (!error || res.status !== 422) return false;
    return (
      (error.details && error.details.answer === "cannot_judge") ||
      (typeof error.code === "string" && error.code.indexOf("face.") === 0)
    );
  }

  /* Index of the frame the answer's faces come from (the first one used). */
  function firstUsedFrame(data, count) {
    var index = Number(data.frame_index);
    return index >= 0 && index < count ? index : 0;
  }

  var UPLOAD_TYPES = ["image/jpeg", "image/png", "image/webp", "image/bmp", "image/gif"];

  /* Whether a photo goes to an upload URL first: the page says so (data-direct-uploads) when
   * photos go straight to the object store (a presigned S3 URL); a burst goes as one form. */
  function viaUploadUrl(photos) {
    return (
      document.body.getAttribute("data-direct-uploads") === "true" &&
      photos.length === 1 &&
      UPLOAD_TYPES.indexOf(photos[0].blob.type) >= 0
    );
  }

  /* POST /api/uploads, then PUT the photo to the URL it gives (this server's signed URL or
   * a presigned S3 URL on another origin) with exactly the headers it names; resolves
   * request()'s shape, with `key` when the photo arrived. */
  function uploadPhoto(blob) {
    var ask = { content_type: blob.type, size: blob.size };
    return request("/api/uploads", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(ask),
    }).then(function (res) {
      if (!res.ok) return res;
      var grant = res.body || {};
      var failed = { ok: false, status: 0, body: null, error: null, message: "" };
      // No cookies: an S3 URL is another site, and this server's URL is signed by itself.
      return fetch(grant.url, {
        method: grant.method || "PUT",
        headers: grant.headers || {},
        body: blob,
        credentials: "omit",
      }).then(
        function (response) {
          if (response.ok) return { ok: true, key: grant.key };
          return readJson(response).then(function (body) {
            failed.status = response.status;
            failed.body = body;
            failed.error = body && body.error && typeof body.error === "object" ? body.error : null;
            failed.message = failed.error
              ? errorMessage(body, response)
              : "The photo could not be uploaded (HTTP " + response.status + "). Please try again.";
            return failed;
          });
        },
        function () {
          failed.message = "Could not upload the photo. Check your connection and try again.";
          return failed;
        }
      );
    });
  }

  /* POST /api/predictions: the photos as a form, or one photo by its upload key. */
  function sendPrediction(photos, fields) {
    if (!viaUploadUrl(photos)) {
      var form = new FormData();
      photos.forEach(function (photo) {
        form.append("photo", photo.blob, photo.name);
      });
      Object.keys(fields).forEach(function (name) {
        form.append(name, String(fields[name]));
      });
      return request("/api/predictions", { method: "POST", body: form });
    }
    return uploadPhoto(photos[0].blob).then(function (res) {
      if (!res.ok) return res;
      var body = { upload_key: res.key };
      Object.keys(fields).forEach(function (name) {
        body[name] = fields[name];
      });
      return request("/api/predictions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    });
  }

  /* Send photos (one, or a webcam burst); options: faceIndex, visit, repick (another face of
   * the photo on screen), note (a line for the answer's small print). */
  function predict(photos, options) {
    if (state.busy) return Promise.resolve();
    var opts = options || {};
    var fields = { client: "web", consent: el.consent.checked };
    if (opts.faceIndex !== null && opts.faceIndex !== undefined) {
      fields.face_index = Number(opts.faceIndex);
    }
    if (opts.visit) fields.visit = opts.visit;
    clearError();
    setBusy(true);
    setStatus(photos.length > 1 ? "Looking for your face in " + photos.length + " frames…" : "Looking for a face…");
    return sendPrediction(photos, fields).then(function (res) {
      setBusy(false);
      setStatus("");
      if (res.ok) {
        state.photos = photos;
        state.sentVisit = opts.visit || null;
        state.frame = firstUsedFrame(res.body || {}, photos.length);
        render(res.body || {}, opts.note);
        return;
      }
      var code = res.error && typeof res.error.code === "string" ? res.error.code : "";
      if (opts.visit && code.indexOf("visit.") === 0) {
        // The visit expired or was refused: answer this photo on its own.
        state.visit = null;
        return predict(photos, {
          faceIndex: opts.faceIndex,
          note: "Your earlier photos could no longer be used, so this answer is from this photo alone.",
        });
      }
      if (isCannotJudge(res)) {
        renderCannot(res.error, photos);
        return;
      }
      showError(res.message);
      // Choosing another face keeps the answer on screen; a new photo goes back to the controls.
      if (!opts.repick) showView("input");
    });
  }

  function answerOf(data) {
    if (data.answer && typeof data.answer === "object") return data.answer;
    // An older server: make the same shape out of label/best_label.
    var name = data.label || data.best_label || "";
    return {
      kind: data.label ? "same_person" : "lookalike",
      names: name ? [name] : [],
      tie: false,
      message: "",
      lookalikes: [],
      looks: 1,
    };
  }

  /* The answer as {eyebrow, headline, detail, summary}: detail is the line under the
   * headline (none where the top lookalike's row says it already), summary the one drawn
   * on the saved card. */
  function answerText(answer) {
    var names = answer.names || [];
    var first = (answer.lookalikes || [])[0];
    if (answer.kind === "same_person") {
      var same = "This face matches " + names[0] + "'s photos in our gallery.";
      return { eyebrow: "Recognised", headline: "This is " + names[0], detail: same, summary: same };
    }
    if (answer.tie && names.length > 1) {
      var both = "You look like " + names[0] + " and " + names[1] + " about equally.";
      return {
        eyebrow: "Your lookalikes",
        headline: "Between " + names[0] + " and " + names[1],
        detail: both,
        summary: both,
      };
    }
    return {
      eyebrow: "Your lookalike",
      headline: "You look like " + (names[0] || (first && first.label) || "someone here"),
      detail: first ? "" : answer.message || "",
      summary: first ? strengthSentence(first) + "." : answer.message || "",
    };
  }

  function strengthWords(item) {
    var words = item.strength_words;
    if (typeof words === "string" && words) return words;
    var s = clamp01(item.strength);
    return s >= 0.9 ? "very strong" : s >= 0.7 ? "strong" : s >= 0.4 ? "moderate" : "slight";
  }

  /* ["Strong resemblance", "stronger than 87% of people's best match here"] */
  function strengthParts(item) {
    var pct = Math.round(clamp01(item.strength) * 100);
    var share;
    if (pct >= 100) share = "stronger than nearly everyone's best match here";
    else if (pct <= 0) share = "weaker than nearly everyone's best match here";
    else share = "stronger than " + pct + "% of people's best match here";
    return [capitalise(strengthWords(item)) + " resemblance", share];
  }

  function strengthSentence(item) {
    return strengthParts(item).join(" — ");
  }

  function render(data, note) {
    state.prediction = data;
    state.visit = typeof data.visit === "string" && data.visit ? data.visit : null;
    var answer = answerOf(data);
    var text = answerText(answer);
    var looks = Number(answer.looks) || 1;

    showView("result");
    el.result.classList.toggle("is-same-person", answer.kind === "same_person");
    // Written after the card is shown, so that the live region announces it.
    el.answerKind.textContent = text.eyebrow;
    el.answerHeadline.textContent = text.headline;
    el.answerDetail.textContent = text.detail;
    show(el.answerDetail, Boolean(text.detail));
    el.looksBadge.textContent = "from " + plural(looks, "photo", "photos");
    show(el.looksBadge, looks > 1);
    show(el.startOver, looks > 1);
    show(el.addPhoto, Boolean(state.visit));
    show(el.addHint, Boolean(state.visit));
    el.saveStatus.textContent = "";

    renderLookalikes(answer, data.face_crop);
    renderFacePicker(data);
    renderProbabilities(data.probabilities || []);
    resetFeedback(answer, data.probabilities || []);
    renderDeletion(data);

    var meta = [];
    if (note) meta.push(note);
    if (data.model_version) meta.push("Model " + data.model_version);
    if (typeof data.latency_ms === "number") meta.push(Math.round(data.latency_ms) + " ms");
    if (data.frames_used > 1) meta.push(data.frames_used + " frames averaged");
    var skipped = (data.skipped_frames || []).length;
    if (skipped) meta.push(plural(skipped, "frame", "frames") + " without a usable face skipped");
    el.resultMeta.textContent = meta.join(" · ");

    reveal(el.result, el.answerHeadline);
  }

  function figure(url, alt, caption, className) {
    var fig = make("figure", "face " + (className || ""));
    var safe = safeImageUrl(url);
    if (safe) {
      var img = make("img", className);
      img.src = safe;
      img.alt = alt;
      img.decoding = "async";
      img.addEventListener("error", function () {
        img.replaceWith(make("span", "face-missing", "?"));
      });
      fig.appendChild(img);
    } else {
      var missing = make("span", "face-missing", "?");
      missing.setAttribute("role", "img");
      missing.setAttribute("aria-label", "No photo");
      fig.appendChild(missing);
    }
    fig.appendChild(make("figcaption", null, caption));
    return fig;
  }

  function renderLookalikes(answer, faceCrop) {
    clear(el.lookalikes);
    var names = answer.names || [];
    (answer.lookalikes || []).forEach(function (item, i) {
      var label = String(item.label);
      var named = names.indexOf(label) >= 0;
      var same = named && answer.kind === "same_person";
      var li = make("li", "lookalike" + (named ? " is-named" : ""));
      li.setAttribute("data-label", label);

      var pair = make("div", "pair");
      pair.appendChild(figure(faceCrop, "Your face", "You", "visitor-face"));
      pair.appendChild(figure(item.reference_url, "Photo of " + label, label, "reference"));
      li.appendChild(pair);

      var body = make("div", "lookalike-body");
      if (!named && i > 0 && i === names.length) {
        body.appendChild(make("p", "eyebrow", "Also resembles"));
      }
      body.appendChild(make("p", "lookalike-name", label));
      var strength = clamp01(same ? 1 : item.strength);
      var parts = same ? ["Same person", "recognised from the gallery"] : strengthParts(item);
      var line = make("p", "strength");
      line.appendChild(make("strong", null, parts[0]));
      line.appendChild(document.createTextNode(" — " + parts[1]));
      body.appendChild(line);
      var meter = make("span", "meter is-" + strengthWords(item).replace(/\s+/g, "-"));
      meter.setAttribute("aria-hidden", "true");
      var fill = make("span", "meter-fill");
      fill.style.width = Math.max(2, Math.round(strength * 100)) + "%";
      meter.appendChild(fill);
      body.appendChild(meter);
      li.appendChild(body);
      el.lookalikes.appendChild(li);
    });
    show(el.lookalikes, el.lookalikes.children.length > 0);
  }

  // --- photo previews with numbered face boxes -----------------------------------------------

  /* An object URL of the photo for the preview <img> `img`; its previous one is revoked. */
  function previewUrl(img, photo) {
    var old = state.previewUrls[img.id];
    if (old) URL.revokeObjectURL(old);
    delete state.previewUrls[img.id];
    if (!photo || !photo.blob || !window.URL || !URL.createObjectURL) return null;
    var url = URL.createObjectURL(photo.blob);
    state.previewUrls[img.id] = url;
    return url;
  }

  /* Place the boxes (pixels of the photo) over the preview image, in % of its size. */
  function placeBoxes(img, boxes) {
    var w = img.naturalWidth;
    var h = img.naturalHeight;
    if (!w || !h) return;
    var nodes = boxes.querySelectorAll("[data-box]");
    for (var i = 0; i < nodes.length; i++) {
      var b = nodes[i].getAttribute("data-box").split(",").map(Number);
      nodes[i].style.left = (100 * b[0]) / w + "%";
      nodes[i].style.top = (100 * b[1]) / h + "%";
      nodes[i].style.width = (100 * b[2]) / w + "%";
      nodes[i].style.height = (100 * b[3]) / h + "%";
    }
    boxes.hidden = false;
  }

  function showPreview(box, img, boxes, photo) {
    var url = previewUrl(img, photo);
    if (!url) {
      show(box, false);
      return;
    }
    boxes.hidden = true;
    img.onload = function () {
      placeBoxes(img, boxes);
    };
    img.onerror = function () {
      show(box, false); // a format the browser cannot show (the server could read it)
    };
    img.src = url;
    show(box, true);
  }

  function renderFacePicker(data) {
    clear(el.facePicker);
    clear(el.faceBoxes);
    var faces = Array.isArray(data.faces) ? data.faces : [];
    if (faces.length <= 1) {
      show(el.facePickerBox, false);
      show(el.photoPreviewBox, false);
      return;
    }
    el.facePickerLabel.textContent = faces.length + " faces found. Which one is you?";
    faces.forEach(function (face, i) {
      var number = Number(face.number) || i + 1;
      var index = number - 1;
      var chosen = index === data.face_index;

      var button = make("button", "face-thumb");
      button.type = "button";
      button.setAttribute("data-face-index", String(index));
      button.setAttribute("aria-pressed", chosen ? "true" : "false");
      button.setAttribute("aria-label", "Face " + number + (chosen ? " (shown)" : ""));
      var thumb = safeImageUrl(face.thumbnail);
      if (thumb) {
        var img = make("img");
        img.src = thumb;
        img.alt = "";
        button.appendChild(img);
      }
      button.appendChild(make("span", "face-number", number));
      button.addEventListener("click", onPickFace);
      el.facePicker.appendChild(button);

      var box = make("button", "face-box");
      box.type = "button";
      box.tabIndex = -1; // the thumbnails above are the keyboard's way to choose
      box.setAttribute("aria-hidden", "true");
      box.setAttribute("data-face-index", String(index));
      box.setAttribute("aria-pressed", chosen ? "true" : "false");
      box.setAttribute("data-box", (face.box || []).slice(0, 4).join(","));
      box.appendChild(make("span", "face-number", number));
      box.addEventListener("click", onPickFace);
      el.faceBoxes.appendChild(box);
    });
    show(el.facePickerBox, true);
    showPreview(el.photoPreviewBox, el.photoPreview, el.faceBoxes, (state.photos || [])[state.frame]);
  }

  function onPickFace(event) {
    var index = Number(event.currentTarget.getAttribute("data-face-index"));
    var data = state.prediction;
    if (!state.photos || !isFinite(index) || !data || index === data.face_index) return;
    // A face is chosen in one photo: the frame the faces were found in.
    var photo = state.photos[state.frame] || state.photos[0];
    predict([photo], { faceIndex: index, visit: state.sentVisit, repick: true });
  }

  // --- can't judge ---------------------------------------------------------------------------

  function renderCannot(error, photos) {
    var details = (error && error.details) || {};
    el.cannotTitle.textContent = photos.length > 1 ? "Can't judge these photos" : "Can't judge this photo";
    el.cannotMessage.textContent = "";
    show(el.cannotBack, canGoBack());
    el.cannotRetry.textContent = state.mode === "add" ? "Try another photo of me" : "Try another photo";

    clear(el.cannotBoxes);
    var faces = Array.isArray(details.faces) ? details.faces : [];
    if (photos.length === 1 && faces.length) {
      faces.forEach(function (face, i) {
        var box = make("span", "face-box" + (i === details.face_index ? " is-judged" : ""));
        box.setAttribute("data-box", (face.box || []).slice(0, 4).join(","));
        el.cannotBoxes.appendChild(box);
      });
      showPreview(el.cannotPhotoBox, el.cannotPhoto, el.cannotBoxes, photos[0]);
    } else {
      show(el.cannotPhotoBox, false);
    }
    showView("cannot");
    el.cannotMessage.textContent = (error && error.message) || "We could not find a face to judge.";
    reveal(el.cannot, el.cannotTitle);
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

  // --- save my result ------------------------------------------------------------------------

  function loadImage(url) {
    var safe = safeImageUrl(url);
    if (!safe) return Promise.resolve(null);
    return new Promise(function (resolve) {
      var img = new Image();
      img.onload = function () {
        resolve(img.naturalWidth ? img : null);
      };
      img.onerror = function () {
        resolve(null);
      };
      img.src = safe;
    });
  }

  function roundedRect(ctx, x, y, w, h, r) {
    ctx.beginPath();
    if (ctx.roundRect) {
      ctx.roundRect(x, y, w, h, r);
    } else {
      ctx.rect(x, y, w, h);
    }
  }

  /* The image scaled to cover a size x size square (centre crop), with rounded corners. */
  function drawFace(ctx, img, x, y, size) {
    ctx.save();
    roundedRect(ctx, x, y, size, size, 24);
    ctx.fillStyle = "#e6e9ef";
    ctx.fill();
    ctx.clip();
    if (img) {
      var scale = Math.max(size / img.naturalWidth, size / img.naturalHeight);
      var w = img.naturalWidth * scale;
      var h = img.naturalHeight * scale;
      ctx.drawImage(img, x + (size - w) / 2, y + (size - h) / 2, w, h);
    } else {
      ctx.fillStyle = "#8a93a6";
      ctx.font = "bold 96px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText("?", x + size / 2, y + size / 2);
    }
    ctx.restore();
  }

  /* Write text wrapped to maxWidth; returns the y below the last line. */
  function wrapText(ctx, text, x, y, maxWidth, lineHeight, maxLines) {
    var words = String(text).split(/\s+/);
    var line = "";
    var lines = 0;
    for (var i = 0; i < words.length; i++) {
      var test = line ? line + " " + words[i] : words[i];
      if (line && ctx.measureText(test).width > maxWidth) {
        if (lines === maxLines - 1) {
          ctx.fillText(line + "…", x, y);
          return y + lineHeight;
        }
        ctx.fillText(line, x, y);
        y += lineHeight;
        lines++;
        line = words[i];
      } else {
        line = test;
      }
    }
    if (line) {
      ctx.fillText(line, x, y);
      y += lineHeight;
    }
    return y;
  }

  function drawCard(answer, face, reference) {
    var W = 1200;
    var H = 630;
    var canvas = document.createElement("canvas");
    canvas.width = W;
    canvas.height = H;
    var ctx = canvas.getContext("2d");
    var font = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif";
    var text = answerText(answer);
    var top = (answer.lookalikes || [])[0] || {};
    var looks = Number(answer.looks) || 1;

    ctx.fillStyle = "#e8edff";
    ctx.fillRect(0, 0, W, H);
    roundedRect(ctx, 32, 32, W - 64, H - 64, 32);
    ctx.fillStyle = "#ffffff";
    ctx.fill();

    var size = 250;
    drawFace(ctx, face, 80, 150, size);
    drawFace(ctx, reference, 80 + size + 24, 150, size);
    ctx.fillStyle = "#5b6475";
    ctx.font = "600 26px " + font;
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    ctx.fillText("You", 80 + size / 2, 150 + size + 44);
    wrapText(ctx, top.label || "", 80 + size + 24 + size / 2, 150 + size + 44, size, 30, 1);

    var x = 680;
    var width = W - 80 - x;
    ctx.textAlign = "left";
    ctx.fillStyle = "#3557d6";
    ctx.font = "700 24px " + font;
    ctx.fillText(text.eyebrow.toUpperCase(), x, 170);
    ctx.fillStyle = "#1d2330";
    ctx.font = "700 54px " + font;
    var y = wrapText(ctx, text.headline, x, 236, width, 62, 3);
    ctx.fillStyle = "#5b6475";
    ctx.font = "28px " + font;
    y = wrapText(ctx, text.summary, x, y + 16, width, 38, 4);
    if (looks > 1) {
      ctx.font = "600 24px " + font;
      ctx.fillText("from " + plural(looks, "photo", "photos"), x, y + 14);
    }
    ctx.fillStyle = "#8a93a6";
    ctx.font = "22px " + font;
    ctx.fillText("Who do I look like? · " + window.location.host, x, H - 72);
    return canvas;
  }

  function download(blob) {
    var url = URL.createObjectURL(blob);
    var link = make("a");
    link.href = url;
    link.download = SAVE_NAME;
    link.hidden = true;
    document.body.appendChild(link);
    link.click();
    document.body.removeChild(link);
    setTimeout(function () {
      URL.revokeObjectURL(url);
    }, 60000);
  }

  function saveResult() {
    var data = state.prediction;
    if (!data) return Promise.resolve();
    var answer = answerOf(data);
    var top = (answer.lookalikes || [])[0] || {};
    el.saveResult.disabled = true;
    el.saveStatus.textContent = "Drawing your card…";
    return Promise.all([loadImage(data.face_crop), loadImage(top.reference_url)])
      .then(function (images) {
        var canvas = drawCard(answer, images[0], images[1]);
        return new Promise(function (resolve, reject) {
          canvas.toBlob(function (blob) {
            if (blob) resolve(blob);
            else reject(new Error("toBlob"));
          }, "image/png");
        });
      })
      .then(
        function (blob) {
          download(blob);
          el.saveStatus.textContent = "Saved as " + SAVE_NAME + ".";
        },
        function () {
          el.saveStatus.textContent = "Your browser could not draw the picture.";
        }
      )
      .then(function () {
        el.saveResult.disabled = false;
      });
  }

  // --- feedback ------------------------------------------------------------------------------

  function resetFeedback(answer, rows) {
    var same = answer.kind === "same_person";
    el.feedbackQuestion.textContent = same ? "Did we get it right?" : "Do you see the resemblance?";
    el.like.textContent = same ? "Yes, that's right" : "Yes, I see it";
    el.dislike.textContent = same ? "No, it isn't" : "No, not really";
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
    var payload = { feedback: kind, token: prediction.feedback_token };
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
        showError(res.message);
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
        el.feedbackStatus.textContent = "Thanks for your feedback! You can tell us who you look more like.";
      }
    });
  }

  // --- consent and deletion ------------------------------------------------------------------

  function renderDeletion(data) {
    el.deletionStatus.textContent = "";
    if (data.deletion_token && data.id) {
      el.deletionTitle.textContent = "Your photo was kept";
      el.predictionId.textContent = data.id;
      el.deletionToken.textContent = data.deletion_code; // p.<id>.<token>: what /forget takes
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
        showError(res.message);
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

  /* A new photo (or burst) from the controls: with the visit when adding to it. */
  function predictNew(photos) {
    return predict(photos, { visit: state.mode === "add" ? state.visit : null });
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
      showView("input");
      return;
    }
    var name = file.name || "photo";
    predictNew([{ blob: file, name: name }]);
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
      showError("Drop a photo file (JPEG, PNG, GIF or BMP).");
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
          : "The camera only works over HTTPS. Upload a photo instead."
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
        el.webcamStart.disabled = false;
        if (state.view !== "input") {
          // The answer came first: do not film in the background.
          stream.getTracks().forEach(function (track) {
            track.stop();
          });
          return;
        }
        state.stream = stream;
        el.video.srcObject = stream;
        show(el.videoFrame, true);
        var played = el.video.play();
        if (played && played.catch) played.catch(function () {});
        el.webcamStart.textContent = "Stop camera";
        el.webcamStart.setAttribute("aria-pressed", "true");
        el.capture.disabled = state.busy;
        clearError();
        setStatus("Camera on. Look at the camera and press “Take photo”.");
      },
      function (error) {
        el.webcamStart.disabled = false;
        setStatus("");
        showError(cameraErrorMessage(error));
      }
    );
  }

  function stopCamera(quiet) {
    if (state.stream) {
      state.stream.getTracks().forEach(function (track) {
        track.stop();
      });
    }
    state.stream = null;
    state.cameraWasOn = false;
    el.video.srcObject = null;
    show(el.videoFrame, false);
    el.capture.disabled = true;
    el.webcamStart.textContent = "Use my camera";
    el.webcamStart.setAttribute("aria-pressed", "false");
    if (!quiet) setStatus("Camera off.");
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
        showError("The camera has not delivered a picture yet. Wait a moment and try again.");
        return;
      }
      return predictNew(frames);
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
      ["inputCard", "input-card"],
      ["inputTitle", "input-title"],
      ["addNote", "add-note"],
      ["addActions", "add-actions"],
      ["backToResult", "back-to-result"],
      ["addStartOver", "add-start-over"],
      ["cannot", "cannot"],
      ["cannotTitle", "cannot-title"],
      ["cannotMessage", "cannot-message"],
      ["cannotPhotoBox", "cannot-photo-box"],
      ["cannotPhoto", "cannot-photo"],
      ["cannotBoxes", "cannot-boxes"],
      ["cannotRetry", "cannot-retry"],
      ["cannotBack", "cannot-back"],
      ["result", "result"],
      ["tryAnother", "try-another"],
      ["looksBadge", "looks-badge"],
      ["answerKind", "answer-kind"],
      ["answerHeadline", "answer-headline"],
      ["answerDetail", "answer-detail"],
      ["lookalikes", "lookalikes"],
      ["facePickerBox", "face-picker-box"],
      ["facePickerLabel", "face-picker-label"],
      ["facePicker", "face-picker"],
      ["photoPreviewBox", "photo-preview-box"],
      ["photoPreview", "photo-preview"],
      ["faceBoxes", "face-boxes"],
      ["addPhoto", "add-photo"],
      ["addHint", "add-hint"],
      ["saveResult", "save-result"],
      ["saveStatus", "save-status"],
      ["startOver", "start-over"],
      ["probabilities", "probabilities"],
      ["feedbackQuestion", "feedback-question"],
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

    el.tryAnother.addEventListener("click", function () {
      enterInput("new");
    });
    el.startOver.addEventListener("click", function () {
      enterInput("new");
    });
    el.addStartOver.addEventListener("click", function () {
      enterInput("new");
    });
    el.addPhoto.addEventListener("click", function () {
      enterInput("add");
    });
    el.cannotRetry.addEventListener("click", function () {
      enterInput(state.mode);
    });
    function backToResult() {
      if (!state.prediction) return;
      clearError();
      showView("result");
      reveal(el.result, el.answerHeadline);
    }
    el.backToResult.addEventListener("click", backToResult);
    el.cannotBack.addEventListener("click", backToResult);
    el.saveResult.addEventListener("click", saveResult);

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

    window.addEventListener("pagehide", function () {
      if (state.stream) stopCamera(true);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
