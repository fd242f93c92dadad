// Routes page: after a lookup, mark the winning route on the map; after a
// change, clear the add form. No inline script (the CSP forbids it).
(function () {
  "use strict";

  function markHits() {
    var map = document.getElementById("route-map");
    if (!map) return;
    map.querySelectorAll(".route.hit").forEach(function (g) { g.classList.remove("hit"); });
    document.querySelectorAll("#lookup-result .winner[data-route]").forEach(function (w) {
      var g = map.querySelector('.route[data-id="' + w.getAttribute("data-route") + '"]');
      if (g) g.classList.add("hit");
    });
  }

  document.addEventListener("htmx:afterSwap", markHits);
  document.addEventListener("routes-changed", function () {
    var f = document.getElementById("add-route");
    if (f) {
      document.getElementById("add-network").value = "";
      document.getElementById("add-comment").value = "";
    }
  });
})();
