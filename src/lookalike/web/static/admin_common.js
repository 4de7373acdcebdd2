/* Helpers shared by the admin pages (dashboard, models): DOM building and Plotly's wall
 * times. Loaded before each page's own script; no dependencies. */
(function () {
  "use strict";

  function byId(id) {
    return document.getElementById(id);
  }

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function fixed(value, digits) {
    if (value === null || value === undefined || value === "" || isNaN(value)) return "–";
    return Number(value).toFixed(digits);
  }

  /* A wall time ("2024-05-01", "2024-05-01 10:00:00") as plotly reads it: ms, as if UTC. */
  function wallMs(value) {
    var m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?/.exec(String(value));
    if (!m) return NaN;
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0));
  }

  function wallString(value) {
    return new Date(value).toISOString().slice(0, 19).replace("T", " ");
  }

  window.lookalikeAdmin = {
    $: byId,
    make: make,
    clear: clear,
    fixed: fixed,
    wallMs: wallMs,
    wallString: wallString,
  };
})();
