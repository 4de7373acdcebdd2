/* The admin dashboard: filters -> /api/analytics/... (JSON) -> Plotly charts + plain figures.
 *
 * Vanilla JS; plotly.js comes from the app itself (/admin/assets/plotly.min.js), never a CDN.
 * Every string from the server is written with textContent. The filters live in the page's
 * URL (?start=&to=&model_version=&label=&bucket=), so a view can be bookmarked. The page sets
 * #dashboard[data-state] to "loading" / "ready" and counts loads in data-loads (for tests).
 */
(function () {
  "use strict";
  var common = window.lookalikeAdmin; // admin_common.js
  var $ = common.$, make = common.make, clear = common.clear, fixed = common.fixed;
  var wallMs = common.wallMs, wallString = common.wallString;

  var API = "/api/analytics/";
  var NONE = "__none__"; // the label filter value for lookalike answers (visitors not in the gallery)
  var PALETTE = [
    "#3557d6", "#1f9d6a", "#e07b00", "#9c3ccf", "#d1345b", "#0f8ea8", "#8a6d00", "#5d6bff",
    "#2c7a3f", "#c2410c", "#7c3aed", "#be185d", "#0e7490", "#4d7c0f", "#b45309", "#1d4ed8",
  ];
  var GREY = "#8b93a3";
  var DAY_MS = 86400000;

  var el = {};
  var state = { generation: 0, loads: 0, colours: {} };




  function setText(id, text) {
    var node = $(id);
    if (node) node.textContent = text;
  }

  // --- formatting ------------------------------------------------------------------------------

  function count(n) {
    return Number(n || 0).toLocaleString("en-US");
  }

  function percent(p, digits) {
    if (p === null || p === undefined || isNaN(p)) return "–";
    return (Number(p) * 100).toFixed(digits === undefined ? 1 : digits) + "%";
  }

  /* Every "%" on this page is a share of the predictions (requests where a face was found and
   * answered): the same figure can never show two values. */
  function shareOf(part, predictions) {
    return predictions ? percent(part / predictions) : "–";
  }

  function ms(value) {
    if (value === null || value === undefined || isNaN(value)) return "–";
    return Math.round(Number(value)).toLocaleString("en-US") + " ms";
  }


  function labelName(label) {
    return label === null || label === undefined || label === NONE ? "Lookalike answers" : label;
  }

  function colour(label) {
    if (label === null || label === undefined || label === NONE) return GREY;
    return state.colours[label] || PALETTE[Object.keys(state.colours).length % PALETTE.length];
  }

  function assignColours(labels) {
    labels
      .filter(function (l) { return l !== null && l !== undefined && l !== NONE; })
      .sort()
      .forEach(function (l) {
        if (!state.colours[l]) {
          state.colours[l] = PALETTE[Object.keys(state.colours).length % PALETTE.length];
        }
      });
  }

  /* "2024-05-01T10:00:00+02:00" -> "2024-05-01 10:00:00": the server's wall time, which is
   * what the filters mean (plotly.js has no time zones). */
  function wallTime(value) {
    if (typeof value !== "string") return value;
    return value.replace("T", " ").replace(/(\.\d+)?(Z|[+-]\d\d:?\d\d)$/, "");
  }

  function isoDay(date) {
    var m = String(date.getMonth() + 1).padStart(2, "0");
    var d = String(date.getDate()).padStart(2, "0");
    return date.getFullYear() + "-" + m + "-" + d;
  }

  function addDays(day, n) {
    var parts = day.split("-").map(Number);
    var date = new Date(parts[0], parts[1] - 1, parts[2] + n);
    return isoDay(date);
  }

  function validDay(value) {
    return typeof value === "string" && /^\d{4}-\d{2}-\d{2}$/.test(value);
  }

  // --- filters ---------------------------------------------------------------------------------

  function defaultRange() {
    var today = isoDay(new Date());
    return { start: addDays(today, -29), to: today };
  }

  function readUrl() {
    var params = new URLSearchParams(window.location.search);
    var range = defaultRange();
    el.start.value = validDay(params.get("start")) ? params.get("start") : range.start;
    el.end.value = validDay(params.get("to")) ? params.get("to") : range.to;
    ["model_version", "label", "bucket"].forEach(function (name) {
      var value = params.get(name);
      if (value === null) return;
      var select = selectFor(name);
      if (!Array.prototype.some.call(select.options, function (o) { return o.value === value; })) {
        select.appendChild(make("option", null, value)).value = value;
      }
      select.value = value;
    });
  }

  function selectFor(name) {
    return { model_version: el.model, label: el.label, bucket: el.bucket }[name];
  }

  /* The API's filters: start, end (exclusive: the day after "to"), model_version, label. */
  function filterParams() {
    var params = new URLSearchParams();
    var start = el.start.value;
    var to = el.end.value;
    if (validDay(start) && validDay(to) && to < start) {
      var swap = start;
      start = to;
      to = swap;
    }
    if (validDay(start)) params.set("start", start);
    if (validDay(to)) params.set("end", addDays(to, 1));
    if (el.model.value) params.set("model_version", el.model.value);
    if (el.label.value) params.set("label", el.label.value);
    return params;
  }

  function writeUrl() {
    var params = new URLSearchParams();
    if (validDay(el.start.value)) params.set("start", el.start.value);
    if (validDay(el.end.value)) params.set("to", el.end.value);
    if (el.model.value) params.set("model_version", el.model.value);
    if (el.label.value) params.set("label", el.label.value);
    if (el.bucket.value !== "day") params.set("bucket", el.bucket.value);
    window.history.replaceState(null, "", window.location.pathname + "?" + params.toString());
  }

  function url(path, extra) {
    var params = filterParams();
    Object.keys(extra || {}).forEach(function (k) { params.set(k, extra[k]); });
    var query = params.toString();
    return API + path + (query ? "?" + query : "");
  }

  // --- fetching --------------------------------------------------------------------------------

  /* The one error shape: {"error": {"code", "message", "details"}}; a 422 lists its fields. */
  function errorMessage(body, response) {
    var error = body && body.error;
    if (!error || !error.message) {
      return "The server answered " + response.status + " " + (response.statusText || "");
    }
    var fields = (error.details && error.details.fields) || [];
    if (!fields.length) return error.message;
    return fields.map(function (f) {
      return String(f.field || "").replace(/^query\./, "") + ": " + f.message;
    }).join("; ");
  }

  function getJson(path) {
    return fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign("/admin/login?next=" + encodeURIComponent(
            window.location.pathname + window.location.search));
          throw new Error("Your session ended: sign in again.");
        }
        return response.json().then(
          function (body) {
            if (!response.ok) throw new Error(errorMessage(body, response));
            return body;
          },
          function () {
            throw new Error(errorMessage(null, response));
          }
        );
      });
  }

  // --- chart helpers ---------------------------------------------------------------------------

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function baseLayout(extra) {
    var text = cssVar("--text", "#1d2330");
    var grid = cssVar("--border", "#dde1e8");
    var layout = {
      autosize: true,
      margin: { t: 24, r: 16, b: 48, l: 56 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: text },
      xaxis: { gridcolor: grid, zerolinecolor: grid, automargin: true },
      yaxis: { gridcolor: grid, zerolinecolor: grid, automargin: true, rangemode: "tozero" },
      legend: { orientation: "h", y: -0.2, x: 0 },
      hoverlabel: { namelength: -1 },
    };
    Object.keys(extra || {}).forEach(function (k) {
      if (typeof extra[k] === "object" && extra[k] !== null && !Array.isArray(extra[k]) && layout[k]) {
        layout[k] = Object.assign({}, layout[k], extra[k]);
      } else {
        layout[k] = extra[k];
      }
    });
    return layout;
  }

  var CONFIG = {
    responsive: true,
    displaylogo: false,
    showSendToCloud: false, // offline: nothing is ever sent to a chart service
    plotlyServerURL: "",
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
  };

  // --- axes ------------------------------------------------------------------------------------

  var HOUR_MS = 3600000;
  /* The finest tick step of a time axis, per kind of x value: timestamps ("instant") and hourly
   * buckets may tick in hours, daily figures in days, weekly buckets in weeks ... */
  var UNIT_MS = { instant: HOUR_MS, hour: HOUR_MS, day: DAY_MS, week: 7 * DAY_MS, month: 30 * DAY_MS };
  /* ... and the least span the axis shows: one point (or a few close ones) gets a day around it
   * (two days, weeks or months for daily, weekly or monthly figures), never plotly's
   * milliseconds around a lone point. */
  var MIN_SPAN_MS = { instant: DAY_MS, hour: DAY_MS, day: 2 * DAY_MS, week: 14 * DAY_MS, month: 61 * DAY_MS };



  /* A date axis for ``values`` (wall times) of one ``unit`` (a key of UNIT_MS). */
  function timeAxis(values, unit) {
    var axis = { type: "date" };
    var times = values.map(wallMs).filter(function (t) { return !isNaN(t); });
    if (!times.length) return axis;
    var step = UNIT_MS[unit] || DAY_MS;
    var least = MIN_SPAN_MS[unit] || DAY_MS;
    var lo = Math.min.apply(null, times);
    var hi = Math.max.apply(null, times);
    if (hi - lo < least) {
      var pad = (least - (hi - lo)) / 2;
      lo -= pad;
      hi += pad;
      axis.range = [wallString(lo), wallString(hi)];
    }
    if (unit === "week") {
      // Ticks on the buckets' own first days (plotly's weekly ticks fall on Sundays).
      axis.tickmode = "linear";
      axis.tick0 = wallString(Math.min.apply(null, times));
      axis.dtick = step * Math.max(1, Math.ceil((hi - lo) / step / 8));
    } else {
      // At most one tick per unit: plotly's tick step is then never finer than the unit.
      axis.nticks = Math.max(2, Math.min(10, Math.floor((hi - lo) / step) + 1));
    }
    return axis;
  }

  /* A whole-number step for a count axis whose largest value is ``max`` (at most ~8 ticks). */
  function wholeStep(max) {
    for (var base = 1; ; base *= 10) {
      for (var i = 0; i < 3; i++) {
        var step = [1, 2, 5][i] * base;
        if (Number(max || 0) / step <= 8) return step;
      }
    }
  }

  /* A count axis: from 0, whole numbers only (never 0.5 predictions). */
  function countAxis(max, title) {
    return {
      title: { text: title }, rangemode: "tozero", tickmode: "linear", tick0: 0,
      dtick: wholeStep(max), tickformat: ",d",
    };
  }

  function maxOf(values) {
    var numbers = values.map(Number).filter(function (v) { return !isNaN(v); });
    return numbers.length ? Math.max.apply(null, numbers) : 0;
  }

  /* Accuracy and macro-F1 are 0..1 on the frozen test set: the axis is always the whole range. */
  var RATIO_AXIS = {
    range: [0, 1], autorange: false, rangemode: "normal", tickmode: "linear", tick0: 0,
    dtick: 0.2, tickformat: ".1f",
  };

  function plot(id, traces, layout) {
    var div = $(id);
    div.hidden = false;
    if (!window.Plotly) throw new Error("plotly.js did not load (/admin/assets/plotly.min.js).");
    var full = baseLayout(layout);
    if (full.xaxis.nticks) { // a narrow chart: fewer (so coarser, never finer) time ticks
      full.xaxis.nticks = Math.min(full.xaxis.nticks, Math.max(2, Math.floor((div.clientWidth || 600) / 110)));
    }
    return window.Plotly.react(div, traces, full, CONFIG);
  }

  function hideChart(id) {
    var div = $(id);
    if (window.Plotly && div.classList.contains("js-plotly-plot")) window.Plotly.purge(div);
    div.hidden = true;
  }

  function card(name) {
    return document.querySelector('[data-chart="' + name + '"]');
  }

  /* Show a card's charts, or its empty message instead (never a broken, empty frame). */
  function setEmpty(name, empty, charts) {
    var box = card(name);
    box.querySelector(".empty").hidden = !empty;
    box.classList.toggle("is-empty", empty);
    box.querySelectorAll("h3").forEach(function (h) { h.hidden = empty; });
    if (empty) charts.forEach(hideChart);
  }

  function setCardError(name, message) {
    var node = card(name).querySelector(".error");
    node.textContent = message || "";
    node.hidden = !message;
  }

  // --- the charts ------------------------------------------------------------------------------

  function renderClasses(body) {
    var data = body.data || [];
    var total = Number(body.total || 0);
    setText("total-predictions", count(total));
    if (body.timezone) setText("timezone", body.timezone);
    assignColours(data.map(function (d) { return d.label; }));
    var empty = total === 0 || data.length === 0;
    setEmpty("classes", empty, ["chart-classes", "chart-classes-by-model"]);
    if (empty) {
      setText("summary-classes", "No predictions from " + el.start.value + " to " + el.end.value + ".");
      return;
    }
    var top = data.slice().sort(function (a, b) { return b.count - a.count; })[0];
    setText(
      "summary-classes",
      count(total) + " predictions · " + data.length + " different answers · most often " +
        labelName(top.label) + " (" + count(top.count) + ", " + shareOf(top.count, total) +
        " of predictions)"
    );
    plot("chart-classes", [{
      type: "bar",
      x: data.map(function (d) { return labelName(d.label); }),
      y: data.map(function (d) { return d.count; }),
      // The share from the counts, as every other "%" on the page (shareOf).
      text: data.map(function (d) { return shareOf(d.count, total); }),
      textposition: "auto",
      marker: { color: data.map(function (d) { return colour(d.label); }) },
      hovertemplate: "%{x}: %{y} predictions (%{text} of predictions)<extra></extra>",
    }], {
      xaxis: { type: "category" }, showlegend: false,
      yaxis: countAxis(maxOf(data.map(function (d) { return d.count; })), "predictions"),
    });

    var byModel = body.by_model || [];
    var versions = unique(byModel.map(function (d) { return d.model_version; })).sort();
    var labels = unique(data.map(function (d) { return labelName(d.label); }));
    var traces = versions.map(function (version) {
      var rows = byModel.filter(function (d) { return d.model_version === version; });
      return {
        type: "bar",
        name: version,
        x: labels,
        y: labels.map(function (l) {
          var row = rows.filter(function (d) { return labelName(d.label) === l; })[0];
          return row ? row.count : 0;
        }),
        hovertemplate: version + " · %{x}: %{y}<extra></extra>",
      };
    });
    if (traces.length) {
      plot("chart-classes-by-model", traces, {
        barmode: "group", xaxis: { type: "category" },
        yaxis: countAxis(maxOf(byModel.map(function (d) { return d.count; })), "predictions"),
      });
    } else {
      hideChart("chart-classes-by-model");
    }
  }

  function unique(values) {
    var seen = {};
    return values.filter(function (v) {
      var key = String(v);
      if (seen[key]) return false;
      seen[key] = true;
      return true;
    });
  }

  /* Accuracy of every version over time, champions starred, promotions/rollbacks marked. */
  function accuracyFigure(versions, events) {
    var rows = versions.slice().sort(function (a, b) {
      return String(a.created_at).localeCompare(String(b.created_at));
    });
    var byVersion = {};
    rows.forEach(function (r) { byVersion[r.version] = r; });
    var x = rows.map(function (r) { return wallTime(r.created_at); });
    var names = rows.map(function (r) { return r.version; });
    var traces = [
      {
        type: "scatter", mode: "lines+markers", name: "Test accuracy",
        x: x, y: rows.map(function (r) { return r.accuracy; }), text: names,
        connectgaps: true, cliponaxis: false, line: { color: PALETTE[0] },
        hovertemplate: "%{text}: accuracy %{y:.3f}<extra></extra>",
      },
      {
        type: "scatter", mode: "lines+markers", name: "Macro-F1",
        x: x, y: rows.map(function (r) { return r.macro_f1; }), text: names,
        connectgaps: true, cliponaxis: false, line: { color: PALETTE[1], dash: "dot" },
        hovertemplate: "%{text}: macro-F1 %{y:.3f}<extra></extra>",
      },
    ];
    var champs = rows.filter(function (r) { return r.was_champion || r.champion; });
    if (champs.length) {
      traces.push({
        type: "scatter", mode: "markers+text", name: "Champion",
        x: champs.map(function (r) { return wallTime(r.created_at); }),
        y: champs.map(function (r) { return r.accuracy; }),
        text: champs.map(function (r) { return r.champion ? r.version + " (now)" : r.version; }),
        textposition: "top center",
        cliponaxis: false,
        marker: {
          symbol: "star", size: champs.map(function (r) { return r.champion ? 18 : 13; }),
          color: "#f2b705", line: { width: 1, color: "#7a5c00" },
        },
        hovertemplate: "%{text}: champion<extra></extra>",
      });
    }
    // Events about versions made outside the range sit at the top of the figures.
    var figures = rows.reduce(function (all, r) { return all.concat([r.accuracy, r.macro_f1]); }, [])
      .filter(function (v) { return typeof v === "number"; });
    var top = figures.length ? Math.max.apply(null, figures) : 1;
    var shapes = [];
    ["promote", "rollback"].forEach(function (kind) {
      var list = (events || []).filter(function (e) { return e.kind === kind; });
      if (!list.length) return;
      var tint = kind === "promote" ? "#1f9d6a" : "#d1345b";
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
          return row && row.accuracy !== null && row.accuracy !== undefined ? row.accuracy : top;
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
    var times = x.concat((events || []).map(function (e) { return wallTime(e.at); }));
    var layout = {
      shapes: shapes,
      xaxis: timeAxis(times, "instant"),
      yaxis: Object.assign({ title: { text: "on the frozen test set (0–1)" } }, RATIO_AXIS),
      margin: { t: 32 },
      hovermode: "closest",
    };
    return { traces: traces, layout: layout };
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function renderAccuracy(body) {
    var data = body.data || [];
    var events = body.events || [];
    setEmpty("accuracy", data.length === 0, ["chart-accuracy"]);
    var champion = data.filter(function (d) { return d.champion; })[0];
    var championName = body.champion || (champion ? champion.version : null);
    setText("champion-version", championName || "none");
    if (!data.length) {
      setText("summary-accuracy", "No model version was made in this range" +
        (championName ? "; the champion is " + championName + "." : "."));
      return;
    }
    var promotions = events.filter(function (e) { return e.kind === "promote"; }).length;
    var rollbacks = events.filter(function (e) { return e.kind === "rollback"; }).length;
    setText(
      "summary-accuracy",
      data.length + " version" + (data.length === 1 ? "" : "s") + " · champion " +
        (champion ? champion.version + " (accuracy " + fixed(champion.accuracy, 3) + ", macro-F1 " +
          fixed(champion.macro_f1, 3) + ")" : championName || "none") +
        " · " + promotions + " promotion" + (promotions === 1 ? "" : "s") + ", " + rollbacks +
        " rollback" + (rollbacks === 1 ? "" : "s")
    );
    var figure = accuracyFigure(data, events);
    plot("chart-accuracy", figure.traces, figure.layout);
  }

  function bucketName(start, bucket) {
    var wall = wallTime(start);
    if (bucket === "hour") return wall.slice(0, 16);
    if (bucket === "week") return "the week of " + wall.slice(0, 10);
    if (bucket === "month") return wall.slice(0, 7);
    return wall.slice(0, 10);
  }

  function renderVolume(body) {
    var data = body.data || [];
    var total = data.reduce(function (s, d) { return s + Number(d.count || 0); }, 0);
    setEmpty("volume", total === 0, ["chart-volume"]);
    if (total === 0) {
      setText("summary-volume", "No predictions in this range.");
      return;
    }
    var bucket = body.bucket || el.bucket.value;
    var starts = unique(data.map(function (d) { return d.start; })).sort();
    var perBucket = {};
    data.forEach(function (d) { perBucket[d.start] = (perBucket[d.start] || 0) + Number(d.count || 0); });
    var busiest = starts.slice().sort(function (a, b) { return perBucket[b] - perBucket[a]; })[0];
    var labels = unique(data.map(function (d) { return d.label === undefined ? null : d.label; }));
    assignColours(labels);
    labels.sort(function (a, b) {
      if (a === null) return 1;
      if (b === null) return -1;
      return String(a).localeCompare(String(b));
    });
    setText(
      "summary-volume",
      count(total) + " predictions in " + starts.length + " " + bucket + (starts.length === 1 ? "" : "s") +
        " with any · busiest " + bucketName(busiest, bucket) + " (" + count(perBucket[busiest]) + ")"
    );
    var x = starts.map(wallTime);
    var width = (UNIT_MS[bucket] || DAY_MS) * (bucket === "month" ? 28 / 30 : 1) * 0.85;
    var traces = labels.map(function (label) {
      var rows = {};
      data.forEach(function (d) {
        if ((d.label === undefined ? null : d.label) === label) rows[d.start] = Number(d.count || 0);
      });
      return {
        type: "bar", name: labelName(label), x: x,
        y: starts.map(function (s) { return rows[s] || 0; }),
        width: x.map(function () { return width; }), // a lone bar too is a bucket wide
        marker: { color: colour(label) },
        hovertemplate: labelName(label) + ": %{y}<extra>%{x}</extra>",
      };
    });
    plot("chart-volume", traces, {
      barmode: "stack", xaxis: timeAxis(x, bucket),
      yaxis: countAxis(maxOf(starts.map(function (s) { return perBucket[s]; })), "predictions per " + bucket),
      hovermode: "x unified",
    });
  }

  function renderHeatmap(body) {
    var z = body.data || [];
    var weekdays = body.weekdays || [];
    var hours = body.hours || [];
    var total = 0;
    var best = { n: -1, day: null, hour: null };
    z.forEach(function (row, i) {
      (row || []).forEach(function (n, j) {
        total += Number(n || 0);
        if (Number(n) > best.n) best = { n: Number(n), day: weekdays[i], hour: hours[j] };
      });
    });
    setEmpty("heatmap", total === 0, ["chart-heatmap"]);
    if (total === 0) {
      setText("summary-heatmap", "No predictions in this range.");
      return;
    }
    setText(
      "summary-heatmap",
      "Busiest: " + best.day + " " + String(best.hour).padStart(2, "0") + ":00 (" + count(best.n) +
        " predictions)"
    );
    plot("chart-heatmap", [{
      type: "heatmap", z: z, x: hours, y: weekdays,
      colorscale: [[0, "rgba(53, 87, 214, 0.04)"], [0.0001, "rgba(53, 87, 214, 0.15)"], [1, "#1f3aa8"]],
      hoverongaps: false,
      colorbar: { thickness: 10, outlinewidth: 0, tickmode: "linear", tick0: 0, dtick: wholeStep(best.n), tickformat: ",d" },
      hovertemplate: "%{y} %{x}:00 – %{z} predictions<extra></extra>",
    }], {
      xaxis: { title: { text: "hour" }, dtick: 3, type: "linear" },
      yaxis: { autorange: "reversed", type: "category", rangemode: "normal" },
      margin: { t: 8, r: 8, b: 44, l: 56 },
    });
  }

  function renderLatencyDay(body) {
    var overall = body.overall || {};
    var data = body.data || [];
    setText("latency-p50", ms(overall.p50));
    setText("latency-p95", ms(overall.p95));
    var empty = !overall.count;
    setEmpty("latency", empty, ["chart-latency", "chart-latency-class"]);
    if (empty) {
      setText("summary-latency", "No predictions in this range.");
      return;
    }
    setText(
      "summary-latency",
      "p50 " + ms(overall.p50) + " · p95 " + ms(overall.p95) + " over " + count(overall.count) + " answers"
    );
    var x = data.map(function (d) { return d.day; });
    plot("chart-latency", [
      {
        type: "scatter", mode: "lines+markers", name: "p50", x: x,
        y: data.map(function (d) { return d.p50; }), line: { color: PALETTE[0] },
        customdata: data.map(function (d) { return d.count; }),
        hovertemplate: "p50 %{y:.0f} ms (%{customdata} answers)<extra>%{x}</extra>",
      },
      {
        type: "scatter", mode: "lines+markers", name: "p95", x: x,
        y: data.map(function (d) { return d.p95; }), line: { color: PALETTE[2] },
        hovertemplate: "p95 %{y:.0f} ms<extra>%{x}</extra>",
      },
    ], { xaxis: timeAxis(x, "day"), yaxis: { title: { text: "ms" } }, hovermode: "x unified" });
  }

  function renderLatencyClass(body) {
    var data = (body.data || []).filter(function (d) { return d.count; });
    if (!data.length || !(body.overall || {}).count) {
      hideChart("chart-latency-class");
      return;
    }
    var x = data.map(function (d) { return labelName(d.label); });
    plot("chart-latency-class", [
      { type: "bar", name: "p50", x: x, y: data.map(function (d) { return d.p50; }), marker: { color: PALETTE[0] },
        hovertemplate: "%{x}: p50 %{y:.0f} ms<extra></extra>" },
      { type: "bar", name: "p95", x: x, y: data.map(function (d) { return d.p95; }), marker: { color: PALETTE[2] },
        hovertemplate: "%{x}: p95 %{y:.0f} ms<extra></extra>" },
    ], { barmode: "group", xaxis: { type: "category" }, yaxis: { title: { text: "ms" } } });
  }

  function renderConfidence(body) {
    var total = Number(body.total || 0);
    var bins = body.histogram || [];
    setText("total-requests", count(total)); // the shares: renderShares, once all is loaded
    setEmpty("confidence", total === 0, ["chart-confidence"]);
    card("confidence").querySelector(".mini-facts").hidden = total === 0;
    if (total === 0) {
      setText("summary-confidence", "No predictions in this range.");
      return;
    }
    var weighted = bins.reduce(function (s, b) { return s + Number(b.count || 0) * (Number(b.from) + Number(b.to)) / 2; }, 0);
    var inBins = bins.reduce(function (s, b) { return s + Number(b.count || 0); }, 0);
    setText(
      "summary-confidence",
      count(total) + " requests, " + count(inBins) + " with a face · mean best-class probability ≈ " +
        (inBins ? fixed(weighted / inBins, 2) : "–")
    );
    plot("chart-confidence", [{
      type: "bar",
      x: bins.map(function (b) { return (Number(b.from) + Number(b.to)) / 2; }),
      width: bins.map(function (b) { return (Number(b.to) - Number(b.from)) * 0.95; }),
      y: bins.map(function (b) { return b.count; }),
      customdata: bins.map(function (b) { return fixed(b.from, 2) + "–" + fixed(b.to, 2); }),
      marker: { color: PALETTE[5] },
      hovertemplate: "probability %{customdata}: %{y} predictions<extra></extra>",
    }], {
      // A probability (0–1), not a share: every "%" on the page is a share of predictions.
      xaxis: { title: { text: "best-class probability (0–1)" }, range: [0, 1], dtick: 0.2, tickformat: ".1f" },
      yaxis: countAxis(maxOf(bins.map(function (b) { return b.count; })), "predictions"),
      showlegend: false,
    });
  }

  function renderFeedback(body) {
    var data = (body.data || []).filter(function (d) { return d.likes || d.dislikes; });
    var confusion = (body.confusion || []).slice().sort(function (a, b) { return b.count - a.count; });
    var likes = data.reduce(function (s, d) { return s + Number(d.likes || 0); }, 0);
    var dislikes = data.reduce(function (s, d) { return s + Number(d.dislikes || 0); }, 0);
    setText("feedback-totals", count(likes) + " / " + count(dislikes));
    var empty = likes + dislikes === 0 && confusion.length === 0;
    setEmpty("feedback", empty, ["chart-feedback"]);
    $("confusion-table").hidden = empty || confusion.length === 0;
    $("confusion-empty").hidden = empty || confusion.length > 0;
    var tbody = $("confusion-table").tBodies[0];
    clear(tbody);
    if (empty) {
      setText("summary-feedback", "No feedback in this range.");
      return;
    }
    setText(
      "summary-feedback",
      count(likes) + " likes · " + count(dislikes) + " dislikes · " + count(confusion.reduce(function (s, c) { return s + Number(c.count || 0); }, 0)) + " corrections"
    );
    confusion.forEach(function (c) {
      var row = make("tr");
      row.appendChild(make("td", null, labelName(c.predicted)));
      row.appendChild(make("td", null, labelName(c.said)));
      row.appendChild(make("td", "num", count(c.count)));
      tbody.appendChild(row);
    });
    if (!data.length) {
      hideChart("chart-feedback");
      return;
    }
    var x = data.map(function (d) { return labelName(d.label); });
    plot("chart-feedback", [
      { type: "bar", name: "Likes", x: x, y: data.map(function (d) { return d.likes; }),
        marker: { color: "#1f9d6a" }, hovertemplate: "%{x}: %{y} likes<extra></extra>" },
      { type: "bar", name: "Dislikes", x: x, y: data.map(function (d) { return d.dislikes; }),
        marker: { color: "#d1345b" }, hovertemplate: "%{x}: %{y} dislikes<extra></extra>" },
    ], {
      barmode: "group", xaxis: { type: "category" },
      yaxis: countAxis(maxOf(data.map(function (d) { return Math.max(d.likes || 0, d.dislikes || 0); })), "answers"),
    });
  }

  /* The reference's median (quantile 0.5) of one of its series, if it has one. */
  function median(reference, key) {
    if (!reference || !Array.isArray(reference.quantiles) || !Array.isArray(reference[key])) return null;
    var i = reference.quantiles.indexOf(0.5);
    return i >= 0 ? reference[key][i] : null;
  }

  function renderDrift(body) {
    var data = body.data || [];
    var threshold = body.threshold;
    var reference = body.reference;
    setEmpty("drift", data.length === 0, ["chart-drift"]);
    if (!data.length) {
      setText("summary-drift", "No predictions in this range.");
      return;
    }
    var scored = data.filter(function (d) { return d.score !== null && d.score !== undefined; });
    var over = data.filter(function (d) { return d.over; }).length;
    var refText = "";
    if (reference) {
      refText = " · reference: " + (body.reference_version || "the model") + "'s held-out photos" +
        " (median probability " + fixed(median(reference, "probability"), 3) +
        ", median match score " + fixed(median(reference, "match_score"), 3) + ")";
    }
    var last = scored[scored.length - 1];
    if (last) {
      setText(
        "summary-drift",
        "Latest " + last.day + ": score " + fixed(last.score, 3) + " · retrain threshold " +
          fixed(threshold, 3) + " · " + over + " of " + data.length + " days over" + refText
      );
    } else {
      setText(
        "summary-drift",
        "No reference to measure drift against" +
          (body.reference_version ? " (" + body.reference_version + " has none: retrain it)" : "") +
          "; the daily mean confidences are shown instead."
      );
    }
    var x = data.map(function (d) { return d.day; });
    var hover = data.map(function (d) {
      return [d.n, fixed(d.mean_match_score, 3), fixed(d.mean_probability, 3)];
    });
    var traces;
    var shapes = [];
    if (scored.length) {
      traces = [{
        type: "scatter", mode: "lines+markers", name: "Drift score", x: x,
        y: data.map(function (d) { return d.score; }),
        line: { color: PALETTE[3] },
        marker: { size: 8, color: data.map(function (d) { return d.over ? "#d1345b" : PALETTE[3]; }) },
        customdata: hover,
        hovertemplate: "score %{y:.3f}<br>%{customdata[0]} photos · mean match %{customdata[1]} · " +
          "mean probability %{customdata[2]}<extra>%{x}</extra>",
      }];
      if (threshold !== null && threshold !== undefined) {
        traces.push({
          type: "scatter", mode: "lines", name: "Retrain threshold",
          x: [x[0], x[x.length - 1]], y: [threshold, threshold],
          line: { color: "#d1345b", dash: "dash", width: 2 }, hoverinfo: "skip",
        });
        shapes.push({
          type: "line", xref: "paper", x0: 0, x1: 1, y0: threshold, y1: threshold,
          line: { color: "#d1345b", dash: "dash", width: 1 },
        });
      }
    } else {
      traces = [
        { type: "scatter", mode: "lines+markers", name: "Mean match score", x: x,
          y: data.map(function (d) { return d.mean_match_score; }), line: { color: PALETTE[3] } },
        { type: "scatter", mode: "lines+markers", name: "Mean probability", x: x,
          y: data.map(function (d) { return d.mean_probability; }), line: { color: PALETTE[5] } },
      ];
    }
    plot("chart-drift", traces, {
      shapes: shapes, xaxis: timeAxis(x, "day"),
      yaxis: { title: { text: scored.length ? "drift score" : "mean" } },
    });
  }

  /* The shares of predictions (key figures, the confidence card's facts), from the counts of
   * /classes (predictions, lookalike answers) and /confidence (requests, several faces, no
   * face): one denominator, the predictions, said in #share-note. */
  function renderShares(bodies) {
    var classes = bodies.classes;
    var confidence = bodies.confidence;
    var requests = confidence ? Number(confidence.total || 0) : null;
    function counted(share) { // /confidence's shares are of its requests
      return requests === null ? null : Math.round(Number(share || 0) * requests);
    }
    var predictions = classes ? Number(classes.total || 0) :
      requests === null ? null : requests - counted(confidence.no_face_share);
    var lookalike = classes ?
      (classes.data || []).filter(function (d) { return d.label === null || d.label === undefined; })
        .reduce(function (s, d) { return s + Number(d.count || 0); }, 0) :
      confidence ? counted(confidence.no_strong_match_share) : null;
    var byClass = Boolean(el.label.value); // a class filter leaves out requests with no face
    var noFace = confidence && !byClass ? counted(confidence.no_face_share) : null;
    var several = confidence ? counted(confidence.several_faces_share) : null;
    var lookalikeShare = lookalike === null ? "–" : shareOf(lookalike, predictions);
    setText("share-no-strong-match", lookalikeShare);
    setText("confidence-no-strong-match", lookalikeShare);
    setText("share-several-faces", several === null ? "–" : shareOf(several, predictions));
    setText("confidence-predictions", predictions === null ? "–" : count(predictions));
    setText("count-no-face", noFace === null ? "–" : count(noFace));
    var note;
    if (predictions === null) {
      note = "Shares (%) are of the predictions, which could not be counted.";
    } else if (predictions === 0) {
      note = "No predictions in this range, so no shares: every % on this page is a share of the" +
        " predictions (requests where a face was found and answered).";
    } else {
      note = "Every % on this page is a share of the " + count(predictions) + " prediction" +
        (predictions === 1 ? "" : "s") + ": requests where a face was found and answered." +
        (noFace ? " The " + count(noFace) + " request" + (noFace === 1 ? "" : "s") +
          " with no face that could be judged " + (noFace === 1 ? "is" : "are") + " not counted in it." : "");
    }
    setText("share-note", note);
    setText("confidence-share-note", predictions ? "% of the " + count(predictions) + " predictions." : "");
    $("confidence-share-note").hidden = !predictions;
  }

  // --- loading ---------------------------------------------------------------------------------

  var SOURCES = [
    { card: "classes", path: "classes", render: renderClasses },
    { card: "accuracy", path: "accuracy", render: renderAccuracy },
    { card: "volume", path: "volume", extra: function () { return { bucket: el.bucket.value }; }, render: renderVolume },
    { card: "heatmap", path: "heatmap", render: renderHeatmap },
    { card: "latency", path: "latency", extra: function () { return { by: "day" }; }, render: renderLatencyDay },
    { card: "latency", path: "latency", extra: function () { return { by: "class" }; }, render: renderLatencyClass },
    { card: "confidence", path: "confidence", render: renderConfidence },
    { card: "feedback", path: "feedback", render: renderFeedback },
    { card: "drift", path: "drift", render: renderDrift },
  ];

  function updateExports() {
    var query = filterParams().toString();
    el.exportCsv.href = API + "export.csv" + (query ? "?" + query : "");
    el.exportJson.href = API + "export.json" + (query ? "?" + query : "");
  }

  function load() {
    var generation = ++state.generation;
    writeUrl();
    updateExports();
    el.root.dataset.state = "loading";
    el.root.setAttribute("aria-busy", "true");
    el.error.hidden = true;
    var cardsFailed = {};
    var bodies = {};
    var jobs = SOURCES.map(function (source) {
      var path = url(source.path, source.extra ? source.extra() : null);
      return getJson(path).then(
        function (body) {
          if (generation !== state.generation) return;
          bodies[source.path] = body;
          try {
            if (!cardsFailed[source.card]) setCardError(source.card, "");
            source.render(body);
          } catch (exc) {
            cardsFailed[source.card] = true;
            setCardError(source.card, "Could not draw this chart: " + exc.message);
          }
        },
        function (exc) {
          if (generation !== state.generation) return;
          cardsFailed[source.card] = true;
          setCardError(source.card, exc.message);
        }
      );
    });
    return Promise.all(jobs).then(function () {
      if (generation !== state.generation) return;
      renderShares(bodies);
      var failed = Object.keys(cardsFailed);
      if (failed.length === SOURCES.length || failed.length === unique(SOURCES.map(function (s) { return s.card; })).length) {
        el.error.textContent = "The analytics could not be loaded: " +
          card(failed[0]).querySelector(".error").textContent;
        el.error.hidden = false;
      }
      state.loads += 1;
      el.root.dataset.loads = String(state.loads);
      el.root.dataset.state = "ready";
      el.root.removeAttribute("aria-busy");
    });
  }

  /* Model versions and classes for the selects: from the registry (every version's classes). */
  function fillSelects() {
    return getJson("/api/models").then(
      function (body) {
        var versions = body.data || [];
        var labels = {};
        versions.forEach(function (v) {
          var option = make("option", null, v.version + (v.alias ? " (" + v.alias + ")" : ""));
          option.value = v.version;
          if (!el.model.querySelector('option[value="' + CSS.escape(v.version) + '"]')) {
            el.model.appendChild(option);
          }
          (v.labels || []).forEach(function (l) { labels[l] = true; });
        });
        var names = Object.keys(labels).sort();
        assignColours(names);
        names.forEach(function (l) {
          if (el.label.querySelector('option[value="' + CSS.escape(l) + '"]')) return;
          var option = make("option", null, l);
          option.value = l;
          el.label.appendChild(option);
        });
      },
      function () {
        /* the selects keep "all"; the charts still load */
      }
    );
  }

  /* The dataset checks' counts (from the review queue's summary), each a link into the queue. */
  var QUALITY_NAMES = {
    likely_mislabelled: "Likely mislabelled",
    closer_to_another_class: "Closer to another class",
    several_faces: "Several faces",
    doubtful_face: "Doubtful faces",
    near_duplicate: "Near-duplicates",
    blurred: "Blurred",
    too_dark: "Too dark",
    too_small: "Face too small",
    outlier: "Outliers",
    visitor_feedback: "Visitors' \u201cI look more like\u201d",
    low_confidence: "Low-confidence answers to label",
  };

  function loadQuality() {
    var section = $("quality-card");
    var body = section.querySelector("tbody");
    var error = section.querySelector(".error");
    return getJson("/api/admin/review?limit=1").then(
      function (queue) {
        clear(body);
        Object.keys(QUALITY_NAMES).forEach(function (kind) {
          var count = (queue.kinds || {})[kind] || 0;
          var row = make("tr");
          var name = make("th");
          name.scope = "row";
          if (count) {
            var link = make("a", null, QUALITY_NAMES[kind]);
            link.href = "/admin/review?kind=" + encodeURIComponent(kind);
            name.appendChild(link);
          } else {
            name.textContent = QUALITY_NAMES[kind];
          }
          row.dataset.kind = kind;
          row.appendChild(name);
          row.appendChild(make("td", "num", String(count)));
          body.appendChild(row);
        });
        $("quality-note").textContent = queue.report_at
          ? queue.total + " photo(s) to review; checked " + wallString(queue.report_at) + "."
          : "The dataset checks have not run yet (lookalike check, or the next import or retrain).";
        section.removeAttribute("aria-busy");
        section.dataset.state = "ready";
      },
      function (exc) {
        error.textContent = "The data-quality counts could not be loaded: " + exc.message;
        error.hidden = false;
        section.removeAttribute("aria-busy");
      }
    );
  }

  function init() {
    loadQuality();
    el.root = $("dashboard");
    el.form = $("filters");
    el.start = $("filter-start");
    el.end = $("filter-end");
    el.model = $("filter-model");
    el.label = $("filter-label");
    el.bucket = $("filter-bucket");
    el.exportCsv = $("export-csv");
    el.exportJson = $("export-json");
    el.error = $("dashboard-error");

    fillSelects().then(function () {
      readUrl();
      [el.start, el.end, el.model, el.label, el.bucket].forEach(function (input) {
        input.addEventListener("change", function () {
          if (input.type === "date" && !validDay(input.value)) return; // half-typed date
          load();
        });
      });
      el.form.addEventListener("submit", function (event) {
        event.preventDefault();
        load();
      });
      $("filter-reset").addEventListener("click", function () {
        var range = defaultRange();
        el.start.value = range.start;
        el.end.value = range.to;
        el.model.value = "";
        el.label.value = "";
        load();
      });
      load();
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
