/* The review queue page: flagged dataset photos and visitors' photos to label
 * (GET /api/admin/review), grouped by kind and class, worst first; decide with the keyboard
 * or the buttons (POST /api/admin/review/decisions), undo a decision no retrain used yet
 * (POST .../decisions/{id}/undo), each write with the session's CSRF token.
 *
 * Keys (shown on the page): ArrowDown / ArrowUp move between photos, K keep, R relabel (a
 * dialog with the dataset's classes as suggestions; a new name makes a new class), D delete,
 * N not a face, U undo. Keys are ignored while typing in a field or while a dialog is open.
 *
 * Vanilla JS, no inline scripts (CSP). Every string from the server is written with
 * textContent. #review-page[data-state] is "loading" / "ready"; data-loads counts loads.
 */
(function () {
  "use strict";
  var common = window.lookalikeAdmin; // admin_common.js
  var request = common.request;
  var $ = common.$, make = common.make, clear = common.clear;

  var API = "/api/admin/review";
  var KIND_NAMES = {
    likely_mislabelled: "Likely mislabelled",
    closer_to_another_class: "Closer to another class",
    several_faces: "Several faces",
    doubtful_face: "Doubtful face",
    near_duplicate: "Near-duplicate",
    blurred: "Blurred",
    too_dark: "Too dark",
    too_small: "Face too small",
    outlier: "Outlier",
    visitor_feedback: "Visitor says \u201cI look more like\u201d",
    low_confidence: "Low-confidence answer",
  };
  var ACTION_NAMES = {
    keep: "keep", relabel: "relabel", label: "label", delete: "delete", not_a_face: "not a face",
  };
  var KEYS = { k: "keep", r: "relabel", d: "delete", n: "not_a_face", u: "undo" };

  var el = {};
  var state = { loads: 0, busy: false, items: [], current: null };

  function setStatus(text) {
    common.say(el.status, text);
  }

  function showError(message) {
    common.showError(el.error, message);
  }

  function describe(decision) {
    var text = ACTION_NAMES[decision.action] || decision.action;
    if (decision.label_after) text += " \u2192 " + decision.label_after;
    return text;
  }

  // --- rendering -------------------------------------------------------------------------------

  function fact(list, name, value) {
    list.appendChild(make("dt", null, name));
    list.appendChild(make("dd", null, value === null || value === undefined ? "\u2013" : value));
  }

  function actionButton(item, action, text, key) {
    var button = make("button", "button" + (action === "delete" ? " danger" : ""), text);
    button.type = "button";
    button.dataset.action = action;
    button.setAttribute("aria-keyshortcuts", key);
    button.addEventListener("click", function () {
      select(item.id);
      act(item, action);
    });
    return button;
  }

  function renderItem(item) {
    var li = make("li", "review-item");
    li.dataset.id = item.id;
    li.dataset.kind = item.kind;
    li.tabIndex = -1;
    if (item.pending) {
      li.dataset.pending = item.pending.action;
      li.classList.add("is-decided");
    }
    var what = KIND_NAMES[item.kind] || item.kind;
    li.setAttribute("aria-label", what + ", labelled " + (item.label || "nothing") +
      (item.pending ? ", decided: " + describe(item.pending) : ""));

    var img = make("img", "review-photo");
    img.src = item.image_url;
    img.alt = "Photo labelled " + (item.label || "nothing");
    img.loading = "lazy";
    img.width = 112;
    img.height = 112;
    li.appendChild(img);

    var body = make("div", "review-body");
    var facts = make("dl", "mini-facts");
    fact(facts, item.prediction_id ? "Answer" : "Label", item.label);
    fact(facts, "Suggested", item.suggested_label);
    fact(facts, "Score", common.fixed(item.score, 3));
    body.appendChild(facts);
    body.appendChild(make("p", "review-reason", item.reason));
    var decided = make("p", "review-decision");
    if (item.pending) {
      decided.appendChild(make("span", "badge pending",
        "Decided: " + describe(item.pending)));
      decided.appendChild(document.createTextNode(" by " + item.pending.actor +
        "; applies at the next retrain"));
    }
    body.appendChild(decided);

    var buttons = make("div", "row-actions review-actions");
    buttons.appendChild(actionButton(item, "keep", "Keep", "K"));
    buttons.appendChild(actionButton(item, "relabel", item.prediction_id ? "Label" : "Relabel", "R"));
    buttons.appendChild(actionButton(item, "delete", "Delete", "D"));
    buttons.appendChild(actionButton(item, "not_a_face", "Not a face", "N"));
    if (item.pending) buttons.appendChild(actionButton(item, "undo", "Undo", "U"));
    body.appendChild(buttons);
    li.appendChild(body);
    return li;
  }

  function render(answer) {
    var items = (answer && answer.data) || [];
    state.items = items;
    fillClasses((answer && answer.classes) || []);
    clear(el.groups);
    var list = null, key = null;
    items.forEach(function (item) {
      var group = item.kind + "\u0000" + (item.label || "");
      if (group !== key) {
        key = group;
        var section = make("section", "review-group");
        section.dataset.kind = item.kind;
        section.dataset.label = item.label || "";
        var count = items.filter(function (i) {
          return i.kind === item.kind && (i.label || "") === (item.label || "");
        }).length;
        section.appendChild(make("h3", null, (KIND_NAMES[item.kind] || item.kind) + " \u00b7 " +
          (item.label || "no class") + " (" + count + ")"));
        list = make("ol", "review-items");
        section.appendChild(list);
        el.groups.appendChild(section);
      }
      list.appendChild(renderItem(item));
    });
    el.empty.hidden = items.length > 0;
    var pending = items.filter(function (i) { return i.pending; }).length;
    el.root.dataset.pending = String(pending);
    if (state.current && !find(state.current)) state.current = null;
    if (!state.current && items.length) state.current = items[0].id;
    mark();
  }

  function fillClasses(classes) {
    clear(el.classes);
    classes.forEach(function (name) {
      var option = make("option");
      option.value = name;
      el.classes.appendChild(option);
    });
    var chosen = el.label.value;
    while (el.label.options.length > 1) el.label.remove(1);
    classes.forEach(function (name) {
      var option = make("option", null, name);
      option.value = name;
      el.label.appendChild(option);
    });
    el.label.value = classes.indexOf(chosen) >= 0 ? chosen : "";
  }

  // --- the current photo -----------------------------------------------------------------------

  function find(id) {
    for (var i = 0; i < state.items.length; i++) if (state.items[i].id === id) return state.items[i];
    return null;
  }

  function node(id) {
    return id ? el.groups.querySelector('li[data-id="' + CSS.escape(id) + '"]') : null;
  }

  /* Roving tabindex: the current photo is the one Tab reaches and the keys act on. */
  function mark() {
    el.groups.querySelectorAll("li.review-item").forEach(function (li) {
      var current = li.dataset.id === state.current;
      li.classList.toggle("is-current", current);
      li.tabIndex = current ? 0 : -1;
      if (current) li.setAttribute("aria-current", "true");
      else li.removeAttribute("aria-current");
    });
  }

  function select(id, focus) {
    state.current = id;
    mark();
    var li = node(id);
    if (li && focus) {
      li.focus();
      li.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    if (!state.items.length) return;
    var at = -1;
    for (var i = 0; i < state.items.length; i++) if (state.items[i].id === state.current) at = i;
    var next = Math.min(state.items.length - 1, Math.max(0, at + step));
    select(state.items[next].id, true);
  }

  // --- actions ---------------------------------------------------------------------------------

  function setBusy(busy) {
    state.busy = busy;
    el.root.querySelectorAll("button[data-action], #review-reload").forEach(function (b) {
      b.disabled = busy;
    });
  }

  function askLabel(item) {
    el.relabelText.textContent = "Now " + (item.label ? "labelled " + item.label : "unlabelled") +
      (item.suggested_label ? "; suggested: " + item.suggested_label : "") + ".";
    el.relabelInput.value = item.suggested_label || "";
    return new Promise(function (resolve) {
      function done() {
        el.dialog.removeEventListener("close", done);
        resolve(el.dialog.returnValue === "ok" ? el.relabelInput.value : null);
      }
      el.dialog.returnValue = "";
      el.dialog.addEventListener("close", done);
      el.dialog.showModal();
      el.relabelInput.focus();
      el.relabelInput.select();
    });
  }

  function send(item, action, label) {
    var undoing = action === "undo";
    var path = undoing ? API + "/decisions/" + item.pending.id + "/undo" : API + "/decisions";
    var body = undoing ? undefined : { item: item.id, action: action, label: label };
    var name = undoing ? "undo" : ACTION_NAMES[action] + (label ? " \u2192 " + label : "");
    setBusy(true);
    showError("");
    setStatus("Saving: " + name + "\u2026");
    var after = item.id;
    if (!undoing) {
      var at = state.items.indexOf(item);
      var next = state.items[at + 1];
      after = next ? next.id : item.id; // decided: on to the next photo
    }
    return request("POST", path, body)
      .then(function (answer) {
        setStatus(undoing ? "Undone: " + describe(answer) + " (" + item.id.split(":")[0] + ")." :
          "Decided: " + describe(answer) + ". It applies at the next retrain.");
        state.current = after;
      })
      .catch(function (exc) {
        setStatus("");
        showError("Could not save (" + name + "): " + exc.message);
        state.current = item.id;
      })
      .then(function () {
        setBusy(false);
        return load();
      })
      .then(function () { select(state.current, true); });
  }

  function act(item, action) {
    if (state.busy || !item) return;
    if (action === "undo") {
      if (!item.pending) {
        setStatus("Nothing to undo on this photo.");
        return;
      }
      send(item, "undo");
      return;
    }
    if (action === "relabel") {
      var verb = item.prediction_id ? "label" : "relabel";
      askLabel(item).then(function (label) {
        if (label === null) {
          select(item.id, true);
          return;
        }
        send(item, verb, label);
      });
      return;
    }
    send(item, action);
  }

  function onKey(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var tag = target && target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || el.dialog.open) return;
    if (target && target.isContentEditable) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      move(event.key === "ArrowDown" ? 1 : -1);
      return;
    }
    var action = KEYS[event.key.toLowerCase()];
    if (!action || !state.items.length) return;
    event.preventDefault();
    var holder = target && target.closest ? target.closest("li.review-item") : null;
    act(find(holder ? holder.dataset.id : state.current), action);
  }

  // --- start -----------------------------------------------------------------------------------

  function load() {
    var params = new URLSearchParams();
    if (el.kind.value) params.set("kind", el.kind.value);
    if (el.label.value) params.set("label", el.label.value);
    var query = params.toString();
    return common.loadPage(el.root, state, API + (query ? "?" + query : ""), render,
      function (message) { showError("The review queue could not be loaded: " + message); });
  }

  function init() {
    el.root = $("review-page");
    el.groups = $("review-groups");
    el.empty = $("review-empty");
    el.status = $("review-status");
    el.error = $("review-error");
    el.kind = $("review-kind");
    el.label = $("review-label");
    el.reload = $("review-reload");
    el.classes = $("review-classes");
    el.dialog = $("relabel-dialog");
    el.relabelText = $("relabel-text");
    el.relabelInput = $("relabel-input");
    [el.kind, el.label].forEach(function (field) {
      field.addEventListener("change", function () {
        showError("");
        setStatus("");
        load();
      });
    });
    el.reload.addEventListener("click", function () {
      showError("");
      setStatus("");
      load();
    });
    el.groups.addEventListener("focusin", function (event) {
      var li = event.target.closest("li.review-item");
      if (li && li.dataset.id !== state.current) select(li.dataset.id);
    });
    document.addEventListener("keydown", onKey);
    // A link may open the queue on one kind (the dashboard's data-quality counts do).
    var wanted = new URLSearchParams(window.location.search).get("kind");
    if (wanted && el.kind.querySelector("option[value='" + CSS.escape(wanted) + "']")) {
      el.kind.value = wanted;
    }
    load();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
