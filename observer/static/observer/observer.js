// Expiry countdowns on the Observer pages. The server renders a rough "in 5 minutes"; this keeps
// every element with data-expires-at ticking each second, including rows htmx swaps in later.
(function () {
  "use strict";

  function format(seconds) {
    if (seconds <= 0) return "expired";
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var rest = seconds % 60;
    if (hours > 0) return "in " + hours + " h " + minutes + " min";
    if (minutes > 0) return "in " + minutes + " min " + rest + " s";
    return "in " + rest + " s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-expires-at]").forEach(function (element) {
      var expiresAt = Date.parse(element.getAttribute("data-expires-at"));
      if (!isNaN(expiresAt)) {
        element.textContent = format(Math.round((expiresAt - now) / 1000));
      }
    });
  }

  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSettle", tick);
  setInterval(tick, 1000);
})();
