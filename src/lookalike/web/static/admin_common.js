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

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  }

  // The one way the admin pages call the API: the session cookie, the CSRF header on every
  // change (JSON ``body`` when given), a sign-in redirect when the session ended, 204 as
  // null, and the API's own message (its invalid fields, listed) as the Error to show.
  function request(method, path, body) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    };
    if (method !== "GET") {
      options.headers["X-CSRF-Token"] = csrfToken();
      if (body !== undefined) {
        options.headers["Content-Type"] = "application/json";
        options.body = JSON.stringify(body || {});
      }
    }
    return fetch(path, options).then(function (response) {
      if (response.status === 401) {
        window.location.assign("/admin/login?next=" + encodeURIComponent(window.location.pathname));
        throw new Error("Your session ended: sign in again.");
      }
      if (response.status === 204) return null;
      return response.json().then(
        function (data) {
          if (!response.ok) {
            var error = (data && data.error) || {};
            var fields = (error.details && error.details.fields) || [];
            var message = fields.length
              ? fields.map(function (f) { return f.field + ": " + f.message; }).join("; ")
              : error.message;
            throw new Error(message || "The server answered " + response.status + ".");
          }
          return data;
        },
        function () {
          throw new Error("The server answered " + response.status + " without JSON.");
        }
      );
    });
  }

  /* GET ``path`` into a page: ``root`` marked loading and busy meanwhile, ``render`` the
   * answer or ``fail`` the error's message; ``state.loads`` counts finished loads (shown as
   * ``data-loads``: tests wait for it). */
  function loadPage(root, state, path, render, fail) {
    root.dataset.state = "loading";
    root.setAttribute("aria-busy", "true");
    return request("GET", path).then(render, function (exc) {
      fail(exc.message);
    }).then(function () {
      state.loads += 1;
      root.dataset.loads = String(state.loads);
      root.dataset.state = "ready";
      root.removeAttribute("aria-busy");
    });
  }

  /* Every admin page has a status line (aria-live) and an error box. */
  function say(node, text) {
    node.textContent = text || "";
  }

  function showError(node, message) {
    node.textContent = message || "";
    node.hidden = !message;
  }

  window.lookalikeAdmin = {
    request: request,
    say: say,
    showError: showError,
    loadPage: loadPage,
    $: byId,
    make: make,
    clear: clear,
    fixed: fixed,
    wallMs: wallMs,
    wallString: wallString,
  };
})();
