/* The name generator page: sliders -> GET /api/names -> the list; GET /api/quote.
 *
 * Vanilla JS, no dependencies. Every string from the server is written with textContent.
 */
(function () {
  "use strict";

  var el = {};
  var busy = false;

  function $(id) {
    return document.getElementById(id);
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function showError(message) {
    el.error.textContent = message;
    el.error.hidden = !message;
  }

  function errorMessage(body, status) {
    if (body && body.error && typeof body.error.message === "string") return body.error.message;
    return "The server answered " + status + ". Please try again.";
  }

  function temperatureText(value) {
    return Number(value).toFixed(1);
  }

  function syncOutputs() {
    el.countValue.textContent = el.count.value;
    el.temperatureValue.textContent = temperatureText(el.temperature.value);
  }

  function renderNames(answer) {
    clear(el.list);
    answer.data.forEach(function (name) {
      var item = document.createElement("li");
      item.textContent = String(name);
      el.list.appendChild(item);
    });
    el.empty.hidden = answer.data.length > 0;
    if (!answer.data.length) el.empty.textContent = "No new names this time: try another prefix or a higher temperature.";
    var meta = "Seed " + answer.seed + " · temperature " + temperatureText(answer.temperature) + " · model " + answer.model + " (" + answer.corpus + ")";
    if (answer.count < answer.requested) {
      meta = "Only " + answer.count + " of " + answer.requested + " new names found. " + meta;
    }
    el.meta.textContent = meta;
  }

  function generate(event) {
    if (event) event.preventDefault();
    if (busy) return;
    busy = true;
    el.button.disabled = true;
    showError("");
    el.status.textContent = "Inventing names…";
    var params = new URLSearchParams();
    params.set("count", el.count.value);
    params.set("temperature", el.temperature.value);
    var prefix = el.prefix.value.trim();
    if (prefix) params.set("prefix", prefix);
    fetch("/api/names?" + params.toString(), { headers: { Accept: "application/json" } })
      .then(function (response) {
        return response
          .json()
          .catch(function () {
            return null;
          })
          .then(function (body) {
            if (!response.ok || !body || !Array.isArray(body.data)) {
              throw new Error(errorMessage(body, response.status));
            }
            return body;
          });
      })
      .then(function (answer) {
        renderNames(answer);
        el.status.textContent = answer.count + (answer.count === 1 ? " name" : " names") + " invented.";
      })
      .catch(function (error) {
        el.status.textContent = "";
        // The old names do not answer this request: take them away beside the error.
        clear(el.list);
        el.empty.hidden = true;
        el.meta.textContent = "";
        showError(error && error.message ? error.message : "Could not reach the server.");
      })
      .then(function () {
        busy = false;
        el.button.disabled = false;
      });
  }

  /* The quote never holds anything up: it has its own request, bounded by a timeout. */
  function loadQuote() {
    var timeout = Number(document.body.getAttribute("data-quote-timeout-ms")) || 2000;
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? window.setTimeout(function () { controller.abort(); }, timeout + 1500) : null;
    fetch("/api/quote", { headers: { Accept: "application/json" }, signal: controller ? controller.signal : undefined })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (quote) {
        if (!quote || typeof quote.text !== "string" || !quote.text) return;
        el.quoteText.textContent = quote.text;
        el.quoteAuthor.textContent = typeof quote.author === "string" ? quote.author : "";
        el.quoteCard.hidden = false;
      })
      .catch(function () {
        /* no quote today: the card stays hidden */
      })
      .then(function () {
        if (timer) window.clearTimeout(timer);
      });
  }

  function init() {
    el.form = $("names-form");
    el.count = $("count");
    el.countValue = $("count-value");
    el.temperature = $("temperature");
    el.temperatureValue = $("temperature-value");
    el.prefix = $("prefix");
    el.button = $("generate");
    el.status = $("status");
    el.error = $("error");
    el.list = $("names-list");
    el.empty = $("names-empty");
    el.meta = $("names-meta");
    el.quoteCard = $("quote-card");
    el.quoteText = $("quote-text");
    el.quoteAuthor = $("quote-author");
    el.count.addEventListener("input", syncOutputs);
    el.temperature.addEventListener("input", syncOutputs);
    el.form.addEventListener("submit", generate);
    syncOutputs();
    loadQuote();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
