/* The evaluation page: a model version on its frozen test set (GET /api/admin/evaluation):
 * the confusion matrix (each number a button showing the photos behind it), the top losses,
 * per-class precision / recall and, with a second version, both side by side. Photos come
 * from /api/admin/dataset/images/<sha256> (admin only).
 *
 * The choice lives in the URL (?version=&compare=), champion beside challenger by default.
 * Vanilla JS, no inline scripts (CSP); every string from the server is written with
 * textContent. #evaluation-page[data-state] is "loading" / "ready"; data-loads counts loads.
 */
(function () {
  "use strict";
  var common = window.lookalikeAdmin; // admin_common.js
  var $ = common.$, make = common.make, clear = common.clear, fixed = common.fixed;

  var API = "/api/admin/evaluation";
  var el = {};
  var state = { loads: 0, answer: null, openCell: null };

  function showError(message) {
    common.showError(el.error, message);
  }

  function percent(value) {
    return value === null || value === undefined ? "–" : (value * 100).toFixed(1) + "%";
  }

  // --- choosing versions ----------------------------------------------------------------------

  function chosen() {
    var params = new URLSearchParams(window.location.search);
    return {
      version: params.get("version") || "champion",
      // No ?compare= at all: the challenger, when there is one; "" compares nothing.
      compare: params.has("compare") ? params.get("compare") : "challenger",
    };
  }

  function option(version, selected) {
    var text = version.version + (version.alias ? " (" + version.alias + ")" : "");
    var node = make("option", null, text);
    node.value = version.version;
    node.selected = selected;
    return node;
  }

  function fillChoices(answer) {
    var current = answer.version.version;
    var other = answer.compare ? answer.compare.version : "";
    clear(el.version);
    answer.versions.forEach(function (v) { el.version.appendChild(option(v, v.version === current)); });
    clear(el.compare);
    var none = make("option", null, "Nothing");
    none.value = "";
    none.selected = !other;
    el.compare.appendChild(none);
    answer.versions.forEach(function (v) {
      if (v.version !== current) el.compare.appendChild(option(v, v.version === other));
    });
  }

  // --- photos ---------------------------------------------------------------------------------

  /* One photo as a list item: the image and what the model said about it. */
  function photoItem(photo, lines, alt) {
    var li = make("li", "photo-card");
    li.dataset.sha256 = photo.sha256;
    var figure = make("figure");
    var img = make("img");
    img.src = photo.url;
    img.alt = alt;
    img.loading = "lazy";
    img.decoding = "async";
    img.width = 112;
    img.height = 112;
    figure.appendChild(img);
    var caption = make("figcaption");
    lines.forEach(function (line, i) {
      caption.appendChild(make(i ? "span" : "strong", i ? "photo-meta" : null, line));
    });
    if (photo.source) {
      var source = make("span", "photo-source", photo.source);
      source.title = photo.source;
      caption.appendChild(source);
    }
    figure.appendChild(caption);
    li.appendChild(figure);
    return li;
  }

  function answerLines(photo) {
    return [
      photo.true === photo.predicted ? photo.true : photo.true + " → " + photo.predicted,
      "p " + fixed(photo.probability, 2) + (photo.true === photo.predicted ? "" : ", own class " +
        fixed(photo.true_probability, 2)),
    ];
  }

  function fillPhotos(list, photos, lines, alt) {
    clear(list);
    photos.forEach(function (photo) { list.appendChild(photoItem(photo, lines(photo), alt(photo))); });
  }

  // --- confusion matrix -----------------------------------------------------------------------

  function shade(count, total) {
    if (!count) return 0;
    var share = total ? count / total : 0;
    return share >= 0.75 ? 4 : share >= 0.5 ? 3 : share >= 0.25 ? 2 : 1;
  }

  function renderConfusion(view) {
    var head = el.confusion.tHead.rows[0];
    var body = el.confusion.tBodies[0];
    clear(head);
    clear(body);
    var corner = make("th", "corner");
    corner.scope = "col";
    corner.appendChild(make("span", null, "True ↓ / answer →"));
    head.appendChild(corner);
    view.labels.forEach(function (label) {
      var th = make("th", "col-label", label);
      th.scope = "col";
      th.title = label;
      head.appendChild(th);
    });
    var cells = {};
    view.cells.forEach(function (cell) { cells[cell.true + "\u0000" + cell.predicted] = cell; });
    view.labels.forEach(function (trueLabel, row) {
      var tr = make("tr");
      var th = make("th", "row-label", trueLabel);
      th.scope = "row";
      tr.appendChild(th);
      var rowTotal = view.confusion[row].reduce(function (a, b) { return a + b; }, 0);
      view.labels.forEach(function (predicted, col) {
        var count = view.confusion[row][col];
        var td = make("td", "num cell level-" + shade(count, rowTotal) + (row === col ? " hit" : count ? " miss" : ""));
        var cell = cells[trueLabel + "\u0000" + predicted];
        if (count && cell) {
          var button = make("button", "cell-button", count);
          button.type = "button";
          button.dataset.true = trueLabel;
          button.dataset.predicted = predicted;
          button.setAttribute("aria-label", count + " test photo" + (count === 1 ? "" : "s") + " of " +
            trueLabel + " answered " + predicted);
          button.setAttribute("aria-controls", "cell-photos");
          button.setAttribute("aria-expanded", "false");
          button.addEventListener("click", function () { openCell(cell, button); });
          td.appendChild(button);
        } else {
          td.appendChild(make("span", "visually-hidden", "0"));
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    el.confusionEmpty.hidden = view.n > 0;
  }

  function openCell(cell, button) {
    var again = state.openCell === button;
    el.confusion.querySelectorAll(".cell-button[aria-expanded='true']").forEach(function (b) {
      b.setAttribute("aria-expanded", "false");
    });
    if (again) { // the same number again closes its photos
      state.openCell = null;
      el.cellPhotos.hidden = true;
      return;
    }
    state.openCell = button;
    button.setAttribute("aria-expanded", "true");
    var same = cell.true === cell.predicted;
    el.cellTitle.textContent = same
      ? cell.true + ", answered right: " + cell.count + " photo" + (cell.count === 1 ? "" : "s")
      : cell.true + " answered as " + cell.predicted + ": " + cell.count + " photo" + (cell.count === 1 ? "" : "s");
    fillPhotos(el.cellList, cell.photos, answerLines, function (p) {
      return "Test photo of " + p.true + ", answered " + p.predicted;
    });
    el.cellMore.hidden = cell.photos.length >= cell.count;
    el.cellMore.textContent = "The " + cell.photos.length + " most confident answers of " + cell.count + " are shown.";
    el.cellPhotos.hidden = false;
    el.cellPhotos.dataset.true = cell.true;
    el.cellPhotos.dataset.predicted = cell.predicted;
  }

  // --- the rest -------------------------------------------------------------------------------

  function renderClasses(view) {
    var body = el.classes.tBodies[0];
    clear(body);
    view.per_class.forEach(function (row) {
      var tr = make("tr");
      var th = make("th", null, row.label);
      th.scope = "row";
      tr.appendChild(th);
      [row.precision, row.recall, row.f1].forEach(function (v) {
        tr.appendChild(make("td", "num", row.support ? fixed(v, 2) : "–"));
      });
      tr.appendChild(make("td", "num", row.support));
      body.appendChild(tr);
    });
  }

  function renderSideBySide(answer) {
    var a = answer.version, b = answer.compare, diff = answer.comparison;
    el.side.hidden = !diff;
    if (!diff) return;
    var head = el.sideTable.tHead.rows[0];
    var body = el.sideTable.tBodies[0];
    clear(head);
    clear(body);
    ["", a.version + (a.alias ? " (" + a.alias + ")" : ""), b.version + (b.alias ? " (" + b.alias + ")" : ""), "Change"]
      .forEach(function (text, i) {
        var th = make("th", i ? "num" : null, text);
        th.scope = "col";
        head.appendChild(th);
      });
    function row(label, mine, theirs, format) {
      var tr = make("tr");
      var th = make("th", null, label);
      th.scope = "row";
      tr.appendChild(th);
      tr.appendChild(make("td", "num", format(mine)));
      tr.appendChild(make("td", "num", format(theirs)));
      var change = mine === null || theirs === null ? null : mine - theirs;
      var td = make("td", "num" + (change > 0 ? " better" : change < 0 ? " worse" : ""),
        change === null ? "–" : (change > 0 ? "+" : "") + (change * 100).toFixed(1) + " pts");
      tr.appendChild(td);
      body.appendChild(tr);
    }
    row("Accuracy", a.accuracy, b.accuracy, percent);
    row("Macro-F1", a.macro_f1, b.macro_f1, percent);
    diff.per_class.forEach(function (c) {
      row("Recall of " + c.label, c.recall, c.compare_recall, percent);
    });
    el.onlyVersionTitle.textContent = "Right with " + a.version + ", wrong with " + b.version +
      ": " + diff.only_version_right_count + " photo" + (diff.only_version_right_count === 1 ? "" : "s");
    el.onlyCompareTitle.textContent = "Right with " + b.version + ", wrong with " + a.version +
      ": " + diff.only_compare_right_count + " photo" + (diff.only_compare_right_count === 1 ? "" : "s");
    fillPhotos(el.onlyVersion, diff.only_version_right, function (p) {
      return [p.true, b.version + " said " + p.compare_predicted];
    }, function (p) { return "Test photo of " + p.true; });
    fillPhotos(el.onlyCompare, diff.only_compare_right, function (p) {
      return [p.true, a.version + " said " + p.predicted];
    }, function (p) { return "Test photo of " + p.true; });
  }

  function render(answer) {
    state.answer = answer;
    state.openCell = null;
    showError("");
    var view = answer.version;
    fillChoices(answer);
    el.accuracy.textContent = percent(view.accuracy);
    el.macroF1.textContent = percent(view.macro_f1);
    el.n.textContent = String(view.n);
    el.testVersion.textContent = "v" + view.test_version;
    el.status.textContent = view.version + (view.alias ? " (" + view.alias + ")" : "") + ": " + view.n +
      " test photos" + (view.unanswered ? ", " + view.unanswered + " without a face it could read" : "") + "." +
      (answer.compare ? " Side by side with " + answer.compare.version + "." : "");
    renderConfusion(view);
    el.cellPhotos.hidden = true;
    fillPhotos(el.losses, view.top_losses, answerLines, function (p) {
      return "Test photo of " + p.true + ", answered " + p.predicted;
    });
    el.lossesEmpty.hidden = view.top_losses.length > 0;
    renderClasses(view);
    renderSideBySide(answer);
  }

  function load() {
    var choice = chosen();
    var query = "?version=" + encodeURIComponent(choice.version) +
      (choice.compare ? "&compare=" + encodeURIComponent(choice.compare) : "");
    el.status.textContent = "Evaluating " + choice.version + "…";
    return common.loadPage(el.root, state, API + query, render, function (message) {
      el.status.textContent = "";
      showError("The evaluation could not be loaded: " + message);
    });
  }

  function init() {
    el.root = $("evaluation-page");
    el.form = $("evaluation-form");
    el.version = $("eval-version");
    el.compare = $("eval-compare");
    el.accuracy = $("eval-accuracy");
    el.macroF1 = $("eval-macro-f1");
    el.n = $("eval-n");
    el.testVersion = $("eval-test-version");
    el.status = $("evaluation-status");
    el.error = $("evaluation-error");
    el.side = $("side-by-side");
    el.sideTable = $("side-table");
    el.onlyVersionTitle = $("only-version-title");
    el.onlyCompareTitle = $("only-compare-title");
    el.onlyVersion = $("only-version");
    el.onlyCompare = $("only-compare");
    el.confusion = $("confusion-table");
    el.confusionEmpty = $("confusion-empty");
    el.cellPhotos = $("cell-photos");
    el.cellTitle = $("cell-title");
    el.cellList = $("cell-photo-list");
    el.cellMore = $("cell-more");
    el.losses = $("top-losses");
    el.lossesEmpty = $("losses-empty");
    el.classes = $("class-table");
    el.form.addEventListener("submit", function (event) {
      event.preventDefault();
      var params = new URLSearchParams();
      if (el.version.value) params.set("version", el.version.value);
      // A version beside itself shows nothing new: compare nothing instead.
      params.set("compare", el.compare.value === el.version.value ? "" : el.compare.value);
      window.history.pushState(null, "", "?" + params.toString());
      load();
    });
    window.addEventListener("popstate", load);
    load();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
