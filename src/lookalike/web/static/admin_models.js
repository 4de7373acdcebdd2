/* The models page: the registry (GET /api/models) as a timeline and a table; each version's
 * history and gate figures (GET /api/models/{version}); retrain now, promote and roll back,
 * each confirmed in a <dialog> and sent with the session's CSRF token (X-CSRF-Token).
 *
 * Vanilla JS; plotly.js comes from the app itself. Every string from the server is written
 * with textContent. #models-page[data-state] is "loading" / "ready"; data-loads counts loads.
 */
(function () {
  "use strict";
  var common = window.lookalikeAdmin; // admin_common.js
  var request = common.request;
  var $ = common.$, make = common.make, clear = common.clear, fixed = common.fixed;
  var wallMs = common.wallMs, wallString = common.wallString;

  var POLL_MS = 1500;
  var POLL_LIMIT_MS = 15 * 60 * 1000;
  var BLUE = "#3557d6";
  var GREEN = "#1f9d6a";
  var RED = "#d1345b";

  var FIGURES = {
    champion: "Champion",
    challenger: "Challenger",
    test_version: "Test set version",
    n_shared: "Test photos compared",
    n: "Test photos",
    champion_accuracy: "Champion accuracy",
    challenger_accuracy: "Challenger accuracy",
    accuracy: "Test accuracy",
    macro_f1: "Macro-F1",
    only_champion_right: "Only the champion right",
    only_challenger_right: "Only the challenger right",
    mcnemar_p: "McNemar p",
    alpha: "Significance level α",
    max_recall_drop: "Largest recall drop allowed",
    recall_drops: "Recall drops",
    classes_added: "New classes",
    classes_removed: "Removed classes",
    new_class_mean_recall: "New classes' mean recall",
    new_class_floor: "New-class recall floor",
    no_strong_match_rate: "Test photos below the identity threshold",
    fit_seconds: "Fit time (s)",
    champion_error: "Champion error",
    withdrawn_visitor_photos: "Deleted visitor photos the champion trained on",
  };
  var RECALLS = ["champion_recall", "challenger_recall", "new_class_recall"];

  var HOUR_MS = 3600000;
  var DAY_MS = 86400000;

  var el = {};
  var state = { loads: 0, busy: false, registry: null, rollbackTo: null };





  function when(value) {
    if (!value) return "–";
    var date = new Date(value);
    if (isNaN(date.getTime())) return String(value);
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  /* Plotly has no time zones: give it the browser's wall time. */
  function wallTime(value) {
    var date = new Date(value);
    if (isNaN(date.getTime())) return value;
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }



  /* The timeline's date axis: a lone version (or a few made within a day) gets the day around
   * it, ticked in hours, never plotly's milliseconds around one point. */
  function timeAxis(values, width) {
    var axis = { type: "date" };
    var times = values.map(wallMs).filter(function (t) { return !isNaN(t); });
    if (!times.length) return axis;
    var lo = Math.min.apply(null, times);
    var hi = Math.max.apply(null, times);
    if (hi - lo < DAY_MS) {
      var pad = (DAY_MS - (hi - lo)) / 2;
      lo -= pad;
      hi += pad;
      axis.range = [wallString(lo), wallString(hi)];
    }
    // At most one tick an hour (fewer on a narrow chart): never finer than hours.
    var most = Math.max(2, Math.min(10, Math.floor((width || 600) / 110)));
    axis.nticks = Math.max(2, Math.min(most, Math.floor((hi - lo) / HOUR_MS) + 1));
    return axis;
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
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
    document.querySelectorAll("#models-page button[data-action], #retrain, #rollback").forEach(function (b) {
      b.disabled = busy || (b.id === "rollback" && !state.rollbackTo);
    });
  }

  // --- confirmation dialog ---------------------------------------------------------------------

  /* Resolves with the reason typed (maybe "") when confirmed, or null when cancelled. */
  function confirmAction(title, text, options) {
    options = options || {};
    el.confirmTitle.textContent = title;
    el.confirmText.textContent = text;
    el.confirmOk.textContent = options.ok || "Confirm";
    var askReason = options.reason !== false;
    el.confirmReason.hidden = !askReason;
    el.confirmReasonLabel.hidden = !askReason;
    el.confirmReason.value = "";
    el.confirmReason.placeholder = options.placeholder || "";
    return new Promise(function (resolve) {
      function done() {
        el.dialog.removeEventListener("close", done);
        resolve(el.dialog.returnValue === "ok" ? el.confirmReason.value.trim() : null);
      }
      el.dialog.returnValue = "";
      el.dialog.addEventListener("close", done);
      el.dialog.showModal();
      (askReason ? el.confirmReason : el.confirmOk).focus();
    });
  }

  // --- rendering -------------------------------------------------------------------------------

  /* The version a roll back would make champion, by the API's rule (Registry._rollback_target):
   * the latest version made champion (promoted, or rolled back to) other than the champion now,
   * skipping versions that were rolled back away from since. None: nothing to go back to. */
  function rollbackTarget(registry) {
    var current = registry.champion;
    if (!current) return null;
    var last = {};
    var order = [];
    (registry.events || []).slice().reverse().forEach(function (e) { // the API: newest first
      if (e.kind !== "promote" && e.kind !== "rollback") return;
      last[e.version] = "promoted";
      order.push(e.version);
      if (e.kind === "rollback" && e.previous) last[e.previous] = "rolled_back";
    });
    for (var i = order.length - 1; i >= 0; i--) {
      if (order[i] !== current && last[order[i]] === "promoted") return order[i];
    }
    return null;
  }

  function renderRollback(registry) {
    var target = rollbackTarget(registry);
    state.rollbackTo = target;
    el.rollbackButton.textContent = target ? "Roll back to " + target : "Roll back";
    el.rollbackButton.dataset.target = target || "";
    var note = "";
    if (!registry.champion) {
      note = "Nothing to roll back: there is no champion yet.";
    } else if (!target) {
      var others = (registry.data || []).length > 1;
      note = "Nothing to roll back to: " + registry.champion + " has no earlier champion" +
        (others ? " that was not rolled back from already; promote a version instead." : " (it is the only version).");
    }
    el.rollbackNote.textContent = note;
    el.rollbackNote.hidden = !note;
    if (note) el.rollbackButton.setAttribute("aria-describedby", "rollback-note");
    else el.rollbackButton.removeAttribute("aria-describedby");
  }

  function championsEver(registry) {
    var ever = {};
    (registry.events || []).forEach(function (e) {
      if (e.kind === "promote" || e.kind === "rollback") ever[e.version] = true;
    });
    if (registry.champion) ever[registry.champion] = true;
    return ever;
  }

  function metric(row, key) {
    var value = row.metrics ? row.metrics[key] : null;
    return typeof value === "number" ? value : null;
  }

  function renderTimeline(registry) {
    var box = document.querySelector('[data-chart="timeline"]');
    var div = $("chart-timeline");
    var rows = (registry.data || []).slice().sort(function (a, b) {
      return String(a.created_at).localeCompare(String(b.created_at));
    });
    box.querySelector(".empty").hidden = rows.length > 0;
    box.querySelector(".error").hidden = true;
    if (!rows.length) {
      if (window.Plotly) window.Plotly.purge(div);
      div.hidden = true;
      return;
    }
    if (!window.Plotly) {
      box.querySelector(".error").textContent = "plotly.js did not load (/admin/assets/plotly.min.js).";
      box.querySelector(".error").hidden = false;
      return;
    }
    div.hidden = false;
    var ever = championsEver(registry);
    var byVersion = {};
    rows.forEach(function (r) { byVersion[r.version] = r; });
    var x = rows.map(function (r) { return wallTime(r.created_at); });
    var names = rows.map(function (r) { return r.version; });
    var traces = [
      {
        type: "scatter", mode: "lines+markers", name: "Test accuracy", x: x, text: names,
        y: rows.map(function (r) { return metric(r, "accuracy"); }), connectgaps: true,
        line: { color: BLUE }, cliponaxis: false,
        hovertemplate: "%{text}: accuracy %{y:.3f}<extra></extra>",
      },
      {
        type: "scatter", mode: "lines+markers", name: "Macro-F1", x: x, text: names,
        y: rows.map(function (r) { return metric(r, "macro_f1"); }), connectgaps: true,
        line: { color: GREEN, dash: "dot" }, cliponaxis: false,
        hovertemplate: "%{text}: macro-F1 %{y:.3f}<extra></extra>",
      },
    ];
    var champs = rows.filter(function (r) { return ever[r.version]; });
    if (champs.length) {
      traces.push({
        type: "scatter", mode: "markers+text", name: "Champion",
        x: champs.map(function (r) { return wallTime(r.created_at); }),
        y: champs.map(function (r) { return metric(r, "accuracy"); }),
        text: champs.map(function (r) {
          return r.version === registry.champion ? r.version + " (now)" : r.version;
        }),
        textposition: "top center",
        cliponaxis: false,
        marker: {
          symbol: "star", color: "#f2b705", line: { width: 1, color: "#7a5c00" },
          size: champs.map(function (r) { return r.version === registry.champion ? 18 : 13; }),
        },
        hovertemplate: "%{text}: champion<extra></extra>",
      });
    }
    var figures = rows.reduce(function (all, r) {
      return all.concat([metric(r, "accuracy"), metric(r, "macro_f1")]);
    }, []).filter(function (v) { return v !== null; });
    var top = figures.length ? Math.max.apply(null, figures) : 1;
    var shapes = [];
    ["promote", "rollback"].forEach(function (kind) {
      var list = (registry.events || []).filter(function (e) { return e.kind === kind; });
      if (!list.length) return;
      var tint = kind === "promote" ? GREEN : RED;
      list.forEach(function (e) {
        shapes.push({
          type: "line", xref: "x", yref: "paper", x0: wallTime(e.at), x1: wallTime(e.at),
          y0: 0, y1: 1, line: { color: tint, width: 1, dash: "dot" },
        });
      });
      traces.push({
        type: "scatter", mode: "markers", name: kind === "promote" ? "Promotion" : "Rollback",
        x: list.map(function (e) { return wallTime(e.at); }),
        y: list.map(function (e) {
          var row = byVersion[e.version];
          var y = row ? metric(row, "accuracy") : null;
          return y === null ? top : y;
        }),
        text: list.map(function (e) {
          return (kind === "promote" ? "Promoted " : "Rolled back to ") + e.version +
            (e.previous ? " (from " + e.previous + ")" : "") + "<br>" + escapeHtml(e.reason || "") +
            (e.actor ? "<br>by " + escapeHtml(e.actor) : "");
        }),
        marker: { symbol: kind === "promote" ? "triangle-up" : "triangle-down", size: 12, color: tint },
        cliponaxis: false,
        hovertemplate: "%{text}<extra></extra>",
      });
    });
    var times = x.concat((registry.events || []).map(function (e) { return wallTime(e.at); }));
    var text = getComputedStyle(document.documentElement).getPropertyValue("--text").trim() || "#1d2330";
    var grid = getComputedStyle(document.documentElement).getPropertyValue("--border").trim() || "#dde1e8";
    window.Plotly.react(div, traces, {
      autosize: true,
      margin: { t: 32, r: 16, b: 48, l: 56 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: text },
      xaxis: Object.assign(timeAxis(times, div.clientWidth), { gridcolor: grid, automargin: true }),
      // Accuracy and macro-F1 are 0..1: the axis is always the whole range.
      yaxis: {
        title: { text: "on the frozen test set (0–1)" }, gridcolor: grid, automargin: true,
        range: [0, 1], autorange: false, tickmode: "linear", tick0: 0, dtick: 0.2, tickformat: ".1f",
      },
      legend: { orientation: "h", y: -0.2, x: 0 },
      hovermode: "closest",
      shapes: shapes,
    }, {
      responsive: true, displaylogo: false, showSendToCloud: false, plotlyServerURL: "",
      modeBarButtonsToRemove: ["select2d", "lasso2d"],
    });
  }

  function badge(text, kind) {
    return make("span", "badge " + (kind || text || ""), text);
  }

  function renderTable(registry) {
    var tbody = el.table.tBodies[0];
    clear(tbody);
    var rows = registry.data || [];
    el.empty.hidden = rows.length > 0;
    el.table.hidden = rows.length === 0;
    rows.forEach(function (row) {
      var tr = make("tr");
      tr.dataset.version = row.version;
      if (row.alias === "champion") tr.classList.add("is-champion");
      var cells = [
        [row.version],
        [when(row.created_at)],
        [row.created_by || "–"],
        [row.backbone || "–"],
        [row.head || "–"],
        [String((row.labels || []).length), "num"],
        [fixed(metric(row, "accuracy"), 3), "num"],
        [fixed(metric(row, "macro_f1"), 3), "num"],
      ];
      cells.forEach(function (cell, i) {
        var td = make("td", cell[1] || null, cell[0]);
        if (i === 0) td.className = "version";
        if (i === 1) td.className = "created";
        if (i === 5) td.title = (row.labels || []).join(", ");
        tr.appendChild(td);
      });
      var decision = make("td", "decision");
      if (row.decision) decision.appendChild(badge(row.decision));
      else decision.textContent = "–";
      tr.appendChild(decision);
      var alias = make("td", "alias");
      if (row.alias) alias.appendChild(badge(row.alias));
      tr.appendChild(alias);

      var actions = make("td");
      var box = make("div", "row-actions");
      var details = make("button", "button", "Details");
      details.type = "button";
      details.dataset.action = "details";
      details.setAttribute("aria-expanded", "false");
      details.addEventListener("click", function () { toggleDetails(tr, row, details); });
      box.appendChild(details);
      if (row.alias !== "champion") {
        var promote = make("button", "button", "Promote");
        promote.type = "button";
        promote.dataset.action = "promote";
        promote.addEventListener("click", function () { promote_(row.version); });
        box.appendChild(promote);
      }
      actions.appendChild(box);
      tr.appendChild(actions);
      tbody.appendChild(tr);
    });
  }

  function renderHistory(registry) {
    clear(el.history);
    var events = registry.events || [];
    el.historyEmpty.hidden = events.length > 0;
    events.forEach(function (e) {
      var li = make("li");
      li.dataset.kind = e.kind;
      li.appendChild(make("time", null, when(e.at)));
      li.appendChild(document.createTextNode(" · "));
      li.appendChild(make("strong", null, (e.kind === "promote" ? "Promoted " : "Rolled back to ") + e.version));
      li.appendChild(document.createTextNode(
        (e.previous ? " (was " + e.previous + ")" : "") + " — " + (e.reason || "") +
          (e.actor ? " — " + e.actor : "")
      ));
      el.history.appendChild(li);
    });
  }

  function render(registry) {
    state.registry = registry;
    el.champion.textContent = registry.champion || "none";
    el.challenger.textContent = registry.challenger || "none";
    el.count.textContent = String(registry.count || 0);
    renderRollback(registry);
    renderTable(registry);
    renderHistory(registry);
    try {
      renderTimeline(registry);
    } catch (exc) {
      var box = document.querySelector('[data-chart="timeline"] .error');
      box.textContent = "Could not draw the timeline: " + exc.message;
      box.hidden = false;
    }
    setBusy(state.busy);
  }

  // --- details ---------------------------------------------------------------------------------

  var RATIOS = [
    "accuracy", "macro_f1", "champion_accuracy", "challenger_accuracy", "alpha", "max_recall_drop",
    "new_class_mean_recall", "new_class_floor", "no_strong_match_rate",
  ];

  function formatValue(key, value) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "number") {
      if (key === "mcnemar_p") return Number(value).toPrecision(3);
      if (RATIOS.indexOf(key) >= 0) return Number(value).toFixed(3);
      return Number.isInteger(value) ? String(value) : Number(value).toFixed(3);
    }
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (Array.isArray(value)) return value.length ? value.join(", ") : "none";
    if (typeof value === "object") {
      var keys = Object.keys(value);
      if (!keys.length) return "none";
      return keys.map(function (k) {
        var v = value[k];
        return k + " " + (typeof v === "number" ? (key === "recall_drops" ? "−" : "") + fixed(v, 2) : String(v));
      }).join(", ");
    }
    return String(value);
  }

  function figuresList(figures) {
    var dl = make("dl", "figures");
    var keys = Object.keys(figures || {}).filter(function (k) {
      if (RECALLS.indexOf(k) >= 0) return false;
      var v = figures[k];
      if (FIGURES[k]) return true;
      return typeof v === "number" || typeof v === "string" || typeof v === "boolean";
    });
    keys.sort(function (a, b) {
      var order = Object.keys(FIGURES);
      var ia = order.indexOf(a), ib = order.indexOf(b);
      return (ia < 0 ? 999 : ia) - (ib < 0 ? 999 : ib);
    });
    keys.forEach(function (k) {
      var item = make("div");
      item.dataset.figure = k;
      item.appendChild(make("dt", null, FIGURES[k] || k.replace(/_/g, " ")));
      item.appendChild(make("dd", null, formatValue(k, figures[k])));
      dl.appendChild(item);
    });
    return keys.length ? dl : null;
  }

  function recallTable(figures) {
    var champion = figures.champion_recall || {};
    var challenger = figures.challenger_recall || {};
    var fresh = figures.new_class_recall || {};
    var drops = figures.recall_drops || {};
    var classes = Object.keys(Object.assign({}, champion, challenger, fresh)).sort();
    if (!classes.length) return null;
    var table = make("table", "data-table recall-table");
    var head = make("tr");
    ["Class", "Champion recall", "Challenger recall", ""].forEach(function (t, i) {
      var th = make("th", i > 0 && i < 3 ? "num" : null, t);
      th.scope = "col";
      head.appendChild(th);
    });
    table.appendChild(make("thead")).appendChild(head);
    var body = table.appendChild(make("tbody"));
    classes.forEach(function (c) {
      var tr = make("tr");
      tr.appendChild(make("td", null, c));
      tr.appendChild(make("td", "num", c in champion ? fixed(champion[c], 2) : "–"));
      var mine = c in challenger ? challenger[c] : fresh[c];
      tr.appendChild(make("td", "num", mine === undefined ? "–" : fixed(mine, 2)));
      var note = c in drops ? "dropped " + fixed(drops[c], 2) : c in fresh && !(c in champion) ? "new" : "";
      tr.appendChild(make("td", null, note));
      body.appendChild(tr);
    });
    return table;
  }

  var KIND_NAMES = { register: "Registered", decision: "Gate decision", promote: "Promoted", rollback: "Rolled back to" };

  function renderEvents(cell, detail) {
    clear(cell);
    var events = detail.events || [];
    if (!events.length) {
      cell.appendChild(make("p", "hint", "No history recorded."));
      return;
    }
    var facts = make("p", "hint",
      "Classes: " + ((detail.labels || []).join(", ") || "–") + " · dataset revision " +
        (detail.dataset_revision === null ? "–" : detail.dataset_revision) + " · test set version " +
        (detail.test_version === null ? "–" : detail.test_version));
    cell.appendChild(facts);
    events.forEach(function (e) {
      var box = make("div", "event");
      box.dataset.kind = e.kind;
      var title = KIND_NAMES[e.kind] || e.kind;
      if (e.kind === "decision") title += e.promoted ? ": promoted" : ": refused";
      if (e.kind === "promote" || e.kind === "rollback") title += " " + e.version;
      box.appendChild(make("p", "event-head", when(e.at) + " · " + title +
        (e.previous && e.kind !== "register" ? " (champion was " + e.previous + ")" : "") +
        (e.actor ? " · " + e.actor : "")));
      if (e.reason) box.appendChild(make("p", "event-reason", e.reason));
      var list = figuresList(e.figures);
      if (list) box.appendChild(list);
      var recall = recallTable(e.figures || {});
      if (recall) box.appendChild(recall);
      cell.appendChild(box);
    });
  }

  function toggleDetails(tr, row, button) {
    var next = tr.nextElementSibling;
    if (next && next.classList.contains("details-row")) {
      next.parentNode.removeChild(next);
      button.setAttribute("aria-expanded", "false");
      return;
    }
    var detailRow = make("tr", "details-row");
    detailRow.dataset.detailsFor = row.version;
    var cell = make("td");
    cell.colSpan = tr.children.length;
    cell.appendChild(make("p", "hint", "Loading…"));
    detailRow.appendChild(cell);
    tr.parentNode.insertBefore(detailRow, tr.nextSibling);
    button.setAttribute("aria-expanded", "true");
    request("GET", "/api/models/" + encodeURIComponent(row.version)).then(
      function (detail) {
        renderEvents(cell, detail);
        detailRow.dataset.loaded = "true";
      },
      function (exc) {
        clear(cell);
        cell.appendChild(make("p", "error", exc.message));
      }
    );
  }

  // --- actions ---------------------------------------------------------------------------------

  function promote_(version) {
    var current = state.registry && state.registry.champion;
    confirmAction(
      "Promote " + version + "?",
      version + " will answer every prediction from now on" +
        (current ? ", instead of " + current + "." : ".") + " You can roll back afterwards.",
      { ok: "Promote", placeholder: "promoted by an admin" }
    ).then(function (reason) {
      if (reason === null) return;
      act("Promoting " + version + "…", "POST", "/api/models/" + encodeURIComponent(version) + "/promote",
        reason ? { reason: reason } : {}, function (answer) {
          return answer.champion + " is now the champion" +
            (answer.previous ? " (was " + answer.previous + ")" : "") + ".";
        }, "Could not promote " + version);
    });
  }

  function rollback() {
    var current = state.registry && state.registry.champion;
    var target = state.rollbackTo;
    if (!target) return; // the button is disabled then
    confirmAction(
      "Roll back from " + (current || "the champion") + "?",
      target + " answers again" + (current ? ", instead of " + current : "") +
        ". The history keeps both.",
      { ok: "Roll back to " + target, placeholder: "rolled back by an admin" }
    ).then(function (reason) {
      if (reason === null) return;
      act("Rolling back…", "POST", "/api/models/rollback", reason ? { reason: reason } : {},
        function (answer) {
          return "Rolled back: " + answer.champion + " is the champion again (was " + answer.previous + ").";
        }, "Could not roll back");
    });
  }

  /* Sends one change; a refusal shows the server's message under ``failed`` and reloads the
   * registry (someone else may have changed it meanwhile). */
  function act(pending, method, path, body, success, failed) {
    setBusy(true);
    showError("");
    setStatus(pending);
    return request(method, path, body)
      .then(function (answer) {
        setStatus(success(answer));
        return load();
      })
      .catch(function (exc) {
        setStatus("");
        showError(failed + ": " + exc.message);
        return load();
      })
      .then(function () { setBusy(false); });
  }

  function retrain() {
    confirmAction(
      "Retrain now?",
      "A new version is trained from the current dataset and compared with the champion on the" +
        " frozen test set; it is promoted only if it is better.",
      { ok: "Retrain", reason: false }
    ).then(function (reason) {
      if (reason === null) return;
      setBusy(true);
      showError("");
      setStatus("Queuing a retrain…");
      request("POST", "/api/models/retrain", {})
        .then(function (job) {
          el.retrainButton.dataset.job = job.id;
          setStatus("Retrain queued (job " + job.id + "); waiting for it to finish…");
          return poll(job.id, Date.now());
        })
        .then(function (result) {
          if (result.ok === false) {
            setStatus("");
            showError("The retrain did not run: " + ((result.error && result.error.message) || "unknown error"));
          } else {
            setStatus(
              "Retrain finished: " + result.version + (result.promoted ? " was promoted. " : " was not promoted. ") +
                (result.reason || "") + (result.seconds ? " (" + fixed(result.seconds, 1) + " s)" : "")
            );
          }
          return load();
        })
        .catch(function (exc) {
          setStatus("");
          showError(exc.message);
        })
        .then(function () { setBusy(false); });
    });
  }

  function poll(id, started) {
    return new Promise(function (resolve, reject) {
      function tick() {
        request("GET", "/api/models/jobs/" + encodeURIComponent(id)).then(function (job) {
          if (job.done) {
            resolve(job.result || {});
          } else if (Date.now() - started > POLL_LIMIT_MS) {
            reject(new Error("The retrain (job " + id + ") is still running; reload this page later."));
          } else {
            window.setTimeout(tick, POLL_MS);
          }
        }, reject);
      }
      tick();
    });
  }

  // --- start -----------------------------------------------------------------------------------

  function load() {
    return common.loadPage(el.root, state, "/api/models", render, function (message) {
      showError("The registry could not be loaded: " + message);
    });
  }

  function init() {
    el.root = $("models-page");
    el.table = $("models-table");
    el.empty = $("models-empty");
    el.history = $("history");
    el.historyEmpty = $("history-empty");
    el.status = $("models-status");
    el.error = $("models-error");
    el.champion = $("champion");
    el.challenger = $("challenger");
    el.count = $("version-count");
    el.retrainButton = $("retrain");
    el.dialog = $("confirm-dialog");
    el.confirmTitle = $("confirm-title");
    el.confirmText = $("confirm-text");
    el.confirmReason = $("confirm-reason");
    el.confirmReasonLabel = $("confirm-reason-label");
    el.confirmOk = $("confirm-ok");
    el.rollbackButton = $("rollback");
    el.rollbackNote = $("rollback-note");
    el.retrainButton.addEventListener("click", retrain);
    el.rollbackButton.addEventListener("click", rollback);
    load();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
