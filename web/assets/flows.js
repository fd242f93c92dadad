// Flows page: the live tail. Records arrive as server-sent events from
// /flows/events (the filters are applied by the server); rows are built
// with textContent, never HTML. The page keeps at most data-max rows,
// holds new ones while paused (as many), and closes the stream when the
// page goes away.
(function () {
  "use strict";

  var cols = ["time", "event", "src", "dst", "protocol", "from", "to", "vnet", "rule", "verdict", "edges", "bytes"];

  function row(f) {
    var tr = document.createElement("tr");
    tr.className = "fresh";
    cols.forEach(function (c) {
      var td = document.createElement("td");
      var v = f[c];
      if (c === "edges") v = (v || []).join(" → ");
      td.textContent = v == null ? "" : String(v);
      if (c === "src" || c === "dst") td.className = "mono";
      if (c === "verdict") td.className = "verdict-" + v;
      tr.appendChild(td);
    });
    return tr;
  }

  function start() {
    var table = document.getElementById("flows");
    if (!table || !window.EventSource) return;
    var body = table.tBodies[0];
    var max = parseInt(table.getAttribute("data-max"), 10) || 500;
    var status = document.getElementById("flows-status");
    var pause = document.getElementById("flows-pause");
    var paused = false, held = [];
    // A stream ends after a while and EventSource opens another, which
    // starts with recent records again: skip those already shown.
    var seen = new Set(), order = [];
    function fresh(id) {
      if (!id || seen.has(id)) return !id;
      seen.add(id);
      order.push(id);
      if (order.length > 2 * max) seen.delete(order.shift());
      return true;
    }

    function show(f) {
      body.insertBefore(row(f), body.firstChild);
      while (body.rows.length > max) body.deleteRow(body.rows.length - 1);
    }
    function say(text, cls) { status.textContent = text; status.className = cls || "muted"; }

    var es = new EventSource(table.getAttribute("data-events"));
    es.addEventListener("open", function () { say("live", "live"); });
    es.addEventListener("flow", function (e) {
      var f;
      try { f = JSON.parse(e.data); } catch (err) { return; }
      if (!fresh(f.id)) return;
      if (paused) {
        held.push(f);
        if (held.length > max) held.shift();
        say("paused: " + held.length + " new", "muted");
        return;
      }
      show(f);
    });
    es.addEventListener("failed", function (e) { say("stopped: " + JSON.parse(e.data), "down"); es.close(); });
    es.addEventListener("signedout", function () { say("signed out", "down"); es.close(); window.location.href = "/signin?next=/flows"; });
    es.addEventListener("error", function () {
      if (es.readyState === EventSource.CLOSED) say("disconnected: reload the page", "down");
      else say("reconnecting…", "muted");
    });

    pause.addEventListener("click", function () {
      paused = !paused;
      pause.setAttribute("aria-pressed", paused ? "true" : "false");
      pause.textContent = paused ? "Resume" : "Pause";
      if (!paused) {
        held.forEach(show);
        held = [];
        say("live", "live");
      } else {
        say("paused", "muted");
      }
    });

    window.addEventListener("pagehide", function () { es.close(); });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
