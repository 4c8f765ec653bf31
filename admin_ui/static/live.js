// Live updates by short polling (no inline script: the CSP allows only files from here).
// An element with data-poll-url is polled every data-poll-s seconds; the JSON answer's
// "fields" replace the text of [data-field] elements (textContent, never HTML), its
// "states" set data-state on [data-state-for] elements, and img[data-refresh] reloads.
(function () {
  "use strict";
  var root = document.querySelector("[data-poll-url]");
  if (!root) {
    return;
  }
  var url = root.getAttribute("data-poll-url");
  var every = (parseFloat(root.getAttribute("data-poll-s")) || 5) * 1000;

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function apply(data) {
    var fields = data.fields || {};
    each("[data-field]", function (el) {
      var key = el.getAttribute("data-field");
      if (Object.prototype.hasOwnProperty.call(fields, key)) {
        el.textContent = fields[key];
      }
    });
    var states = data.states || {};
    each("[data-state-for]", function (el) {
      var key = el.getAttribute("data-state-for");
      if (Object.prototype.hasOwnProperty.call(states, key)) {
        el.setAttribute("data-state", states[key]);
      }
    });
    each("img[data-refresh]", function (img) {
      img.src = img.getAttribute("data-refresh") + "?t=" + Date.now();
    });
    return !data.stop;
  }

  function tick() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
          return null;
        }
        return response.ok ? response.json() : {};
      })
      .then(function (data) {
        if (data && apply(data)) {
          window.setTimeout(tick, every);
        }
      })
      .catch(function () {
        // Network trouble (Tenang restarting): keep the last figures, try again later.
        window.setTimeout(tick, every);
      });
  }

  window.setTimeout(tick, every);
})();
