/* The contributions page: every visitor who joined the gallery (GET /api/admin/contributions),
 * held ones first; approve one held for review (POST .../{id}/approve) or delete every copy of
 * one (DELETE .../{id}, confirmed in a <dialog>), each sent with the session's CSRF token
 * (X-CSRF-Token).
 *
 * Vanilla JS, no inline scripts (CSP). Every string from the server is written with
 * textContent. #contributions-page[data-state] is "loading" / "ready"; data-loads counts loads.
 */
(function () {
  "use strict";
  var common = window.lookalikeAdmin; // admin_common.js
  var request = common.request;
  var $ = common.$, make = common.make, clear = common.clear;

  var API = "/api/admin/contributions";
  var STATUS_NAMES = { queued: "Queued", processing: "Processing", enrolled: "Enrolled", refused: "Refused" };
  var MEDIA_NAMES = { video: "Video", photos: "Photos" };

  var el = {};
  var state = { loads: 0, busy: false, rows: [] };

  function when(value) {
    if (!value) return "–";
    var date = new Date(value);
    if (isNaN(date.getTime())) return String(value);
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  // --- talking to the server -------------------------------------------------------------------

  function setStatus(text) {
    common.say(el.status, text);
  }

  function showError(message) {
    common.showError(el.error, message);
  }

  function setBusy(busy) {
    state.busy = busy;
    document.querySelectorAll("#contributions-page button[data-action], #contributions-reload").forEach(
      function (b) { b.disabled = busy; }
    );
    el.heldOnly.disabled = busy;
  }

  // --- confirmation dialog ---------------------------------------------------------------------

  /* Resolves true when confirmed, false when cancelled (or closed with Escape). */
  function confirmAction(title, text, ok) {
    el.confirmTitle.textContent = title;
    el.confirmText.textContent = text;
    el.confirmOk.textContent = ok;
    return new Promise(function (resolve) {
      function done() {
        el.dialog.removeEventListener("close", done);
        resolve(el.dialog.returnValue === "ok");
      }
      el.dialog.returnValue = "";
      el.dialog.addEventListener("close", done);
      el.dialog.showModal();
      el.confirmCancel.focus(); // the safe choice first: Enter does not delete
    });
  }

  // --- rendering -------------------------------------------------------------------------------

  function badge(text, kind) {
    var span = make("span", "badge" + (kind ? " " + kind : ""), text);
    return span;
  }

  function reviewCell(row) {
    var td = make("td", "review");
    // A refused contribution is never shown, whatever ``approved`` says: only its reason.
    if (!row.approved) {
      td.appendChild(badge("Held for review", "held"));
    } else if (row.status !== "refused") {
      td.appendChild(badge("Approved", "approved"));
    }
    if (row.reason) {
      var reason = make("p", "review-reason", row.reason);
      if (row.reason_code) reason.title = row.reason_code;
      td.appendChild(reason);
    }
    return td;
  }

  function render(answer) {
    var rows = (answer && answer.data) || [];
    state.rows = rows;
    var body = el.table.tBodies[0];
    clear(body);
    rows.forEach(function (row) {
      var tr = make("tr");
      tr.dataset.id = row.id;
      tr.dataset.status = row.status;
      tr.dataset.approved = row.approved ? "true" : "false";
      if (!row.approved) tr.className = "is-held";
      var name = make("th", "name", row.display_name);
      name.scope = "row";
      tr.appendChild(name);
      var status = make("td", "status-cell");
      status.appendChild(badge(STATUS_NAMES[row.status] || row.status,
        row.status === "refused" ? "refused" : row.status === "enrolled" ? "enrolled" : null));
      if (row.status === "processing" && typeof row.progress === "number") {
        status.appendChild(document.createTextNode(" " + Math.round(row.progress * 100) + "%"));
      }
      tr.appendChild(status);
      tr.appendChild(make("td", "media", MEDIA_NAMES[row.media] || row.media));
      tr.appendChild(make("td", "num crops", row.crops));
      tr.appendChild(reviewCell(row));
      var created = make("td", "created", when(row.created_at));
      created.title = String(row.created_at);
      tr.appendChild(created);

      var actions = make("td");
      var box = make("div", "row-actions");
      if (!row.approved && row.status === "enrolled") {
        var approve = make("button", "button primary", "Approve");
        approve.type = "button";
        approve.dataset.action = "approve";
        approve.setAttribute("aria-label", "Approve " + row.display_name);
        approve.addEventListener("click", function () { approveRow(row); });
        box.appendChild(approve);
      }
      var remove = make("button", "button danger", "Delete");
      remove.type = "button";
      remove.dataset.action = "delete";
      remove.setAttribute("aria-label", "Delete " + row.display_name);
      remove.addEventListener("click", function () { deleteRow(row); });
      box.appendChild(remove);
      actions.appendChild(box);
      tr.appendChild(actions);
      body.appendChild(tr);
    });
    el.table.hidden = !rows.length;
    el.empty.textContent = el.heldOnly.checked ? "No contribution is held for review." : "No contributions yet.";
    el.empty.hidden = rows.length > 0;
    setBusy(state.busy);
  }

  /* After a change, keep the keyboard where it was: the row's first button, else the list. */
  function refocus(id) {
    var row = id ? el.table.querySelector('tr[data-id="' + CSS.escape(id) + '"] button') : null;
    (row || el.heldOnly).focus();
  }

  // --- actions ---------------------------------------------------------------------------------

  function act(pending, method, path, success, failed, id) {
    setBusy(true);
    showError("");
    setStatus(pending);
    return request(method, path)
      .then(function (answer) {
        setStatus(success(answer));
      })
      .catch(function (exc) {
        setStatus("");
        showError(failed + ": " + exc.message);
      })
      .then(function () {
        setBusy(false);
        return load();
      })
      .then(function () { refocus(id); });
  }

  function approveRow(row) {
    if (state.busy) return;
    act("Approving " + row.display_name + "…", "POST", API + "/" + encodeURIComponent(row.id) + "/approve",
      function (answer) {
        return (answer && answer.display_name || row.display_name) +
          " is approved: matched and shown to visitors from now on.";
      }, "Could not approve " + row.display_name, row.id);
  }

  function deleteRow(row) {
    if (state.busy) return;
    confirmAction(
      "Delete " + row.display_name + "?",
      "Delete every copy of " + row.display_name + "? This cannot be undone.",
      "Delete"
    ).then(function (ok) {
      if (!ok) {
        refocus(row.id);
        return;
      }
      act("Deleting " + row.display_name + "…", "DELETE", API + "/" + encodeURIComponent(row.id),
        function () { return "Deleted every copy of " + row.display_name + "."; },
        "Could not delete " + row.display_name, null);
    });
  }

  // --- start -----------------------------------------------------------------------------------

  function load() {
    var path = API + "?held=" + (el.heldOnly.checked ? "true" : "false");
    return common.loadPage(el.root, state, path, render, function (message) {
      showError("The contributions could not be loaded: " + message);
    });
  }

  function init() {
    el.root = $("contributions-page");
    el.table = $("contributions-table");
    el.empty = $("contributions-empty");
    el.status = $("contributions-status");
    el.error = $("contributions-error");
    el.heldOnly = $("held-only");
    el.reload = $("contributions-reload");
    el.dialog = $("confirm-dialog");
    el.confirmTitle = $("confirm-title");
    el.confirmText = $("confirm-text");
    el.confirmOk = $("confirm-ok");
    el.confirmCancel = $("confirm-cancel");
    el.heldOnly.addEventListener("change", function () {
      showError("");
      setStatus("");
      load();
    });
    el.reload.addEventListener("click", function () {
      showError("");
      setStatus("");
      load();
    });
    load();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
