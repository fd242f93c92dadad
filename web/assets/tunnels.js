// Switchyard console, tunnels page: the live tables are swapped in afresh
// every few seconds; keep the operator's sort order and filter across swaps.
// Copy buttons for the commands to paste on a gateway host.
(function () {
  "use strict";
  var sorted = {}; // table id -> {index, dir}

  document.addEventListener("click", function (e) {
    var th = e.target.closest && e.target.closest("#live table.sortable thead th");
    if (!th) return;
    var table = th.closest("table");
    sorted[table.id] = {
      index: Array.prototype.indexOf.call(th.parentNode.children, th),
      dir: th.getAttribute("aria-sort")
    };
  });

  // Copy buttons: data-copy names the element whose text they copy.
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("button[data-copy]");
    if (!b || !navigator.clipboard) return;
    var el = document.getElementById(b.getAttribute("data-copy"));
    if (!el) return;
    navigator.clipboard.writeText(el.textContent).then(function () {
      b.textContent = "Copied";
      setTimeout(function () { b.textContent = "Copy"; }, 1500);
    });
  });

  document.addEventListener("htmx:afterSettle", function (e) {
    var live = document.getElementById("live");
    if (!live || !(e.target === live || live.contains(e.target))) return;
    Object.keys(sorted).forEach(function (id) {
      var s = sorted[id];
      var table = document.getElementById(id);
      if (!table) return;
      var th = table.querySelectorAll("thead th")[s.index];
      if (!th) return;
      th.click(); // ascending
      if (s.dir === "descending") th.click();
    });
    live.querySelectorAll("input[data-filter]").forEach(function (input) {
      if (input.value) input.dispatchEvent(new Event("input"));
    });
  });
})();
