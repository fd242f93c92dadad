// Routes page: after a lookup, mark the winning route on the map; after a
// change, clear the add form; a delete asks to be confirmed. No inline script (the CSP forbids it).
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

  // Delete asks first: the row's Delete reveals "Delete CIDR" (the submit)
  // and Cancel, by the form's class; only the second button posts.
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("form.delete-route button");
    if (!b) return;
    var f = b.form, ask = f.querySelector(".ask");
    if (b.classList.contains("ask")) {
      document.querySelectorAll("form.delete-route.asking").forEach(function (o) {
        o.classList.remove("asking");
        o.querySelector(".ask").setAttribute("aria-expanded", "false");
      });
      f.classList.add("asking");
      ask.setAttribute("aria-expanded", "true");
      f.querySelector(".sure").focus();
    } else if (b.classList.contains("cancel")) {
      f.classList.remove("asking");
      ask.setAttribute("aria-expanded", "false");
      ask.focus();
    }
  });

  document.addEventListener("htmx:afterSwap", markHits);
  document.addEventListener("routes-changed", function () {
    var f = document.getElementById("add-route");
    if (f) {
      document.getElementById("add-network").value = "";
      document.getElementById("add-comment").value = "";
    }
  });
})();
