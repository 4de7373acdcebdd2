/* Forget me: a deletion code -> the right DELETE.
 *
 * Codes are `<kind>.<id>.<token>`: `c` a contribution (DELETE /api/contributions/<id>), `p` a
 * photo kept from the main page (DELETE /api/predictions/<id>); the id is 32 hex digits, the
 * token URL-safe base64 (never a dot). The token goes in the X-Deletion-Token header, never
 * in the URL. Vanilla JS; server strings are written with textContent only.
 */
(function () {
  "use strict";

  var CODE = /^([cp])\.([0-9a-f]{32})\.([A-Za-z0-9_-]{8,200})$/;
  var ENDPOINT = { c: "/api/contributions/", p: "/api/predictions/" };
  var FORMAT =
    "That is not a deletion code. A code looks like c.<32 letters and digits>.<token> (from joining" +
    " the gallery) or p.<32 letters and digits>.<token> (a photo kept from the main page). Paste" +
    " the whole code you were given.";

  var el = {};
  var busy = false;

  function $(id) {
    return document.getElementById(id);
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  /* {kind, id, token} or null. Spaces and line breaks (from copying) are ignored, and the
   * kind and the id may have been upper-cased by whatever kept them (the token may not). */
  function parse(text) {
    var parts = String(text || "").replace(/\s+/g, "").split(".");
    if (parts.length !== 3) return null;
    var match = CODE.exec(parts[0].toLowerCase() + "." + parts[1].toLowerCase() + "." + parts[2]);
    return match ? { kind: match[1], id: match[2], token: match[3] } : null;
  }

  function showError(message) {
    el.error.textContent = message || "";
    show(el.error, Boolean(message));
  }

  function showDone(message) {
    el.done.textContent = message || "";
    show(el.done, Boolean(message));
  }

  function errorMessage(text, status) {
    var body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (e) {
      body = null;
    }
    if (body && body.error && typeof body.error.message === "string" && body.error.message) {
      return body.error.message;
    }
    if (status === 0) return "Could not reach the server. Check your connection and try again.";
    if (status === 429) return "Too many requests. Please wait a minute and try again.";
    return "The server refused the request (HTTP " + status + "). Please try again.";
  }

  function setBusy(value) {
    busy = value;
    el.remove.disabled = value;
    el.code.setAttribute("aria-busy", value ? "true" : "false");
  }

  function submit(event) {
    event.preventDefault();
    if (busy) return;
    showDone("");
    var code = parse(el.code.value);
    if (!code) {
      showError(
        el.code.value.trim() ? FORMAT : "Paste your deletion code first. " + FORMAT.slice(FORMAT.indexOf("A code"))
      );
      el.code.setAttribute("aria-invalid", "true");
      el.code.focus();
      return;
    }
    el.code.removeAttribute("aria-invalid");
    showError("");
    setBusy(true);
    fetch(ENDPOINT[code.kind] + code.id, {
      method: "DELETE",
      headers: { Accept: "application/json", "X-Deletion-Token": code.token },
      credentials: "same-origin",
      cache: "no-store",
    })
      .then(
        function (response) {
          return response.text().then(function (text) {
            return { status: response.status, text: text };
          });
        },
        function () {
          return { status: 0, text: "" };
        }
      )
      .then(function (res) {
        setBusy(false);
        if (res.status === 204 || res.status === 200) {
          el.code.value = "";
          showDone(
            code.kind === "c"
              ? "Deleted: nothing of it is kept. Your face crops, their embeddings and your display name are gone."
              : "Deleted: nothing of it is kept. The photo is gone."
          );
          return;
        }
        showError(errorMessage(res.text, res.status));
      });
  }

  function init() {
    el.form = $("forget-form");
    el.code = $("code");
    el.remove = $("delete");
    el.error = $("error");
    el.done = $("done");
    el.form.addEventListener("submit", submit);
    el.code.addEventListener("input", function () {
      el.code.removeAttribute("aria-invalid");
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
