// Roundtable facilitator's console: live.js places the room's presence and speaking lines
// as they change; when it does, the people panel (who is here, with what they share) is
// fetched again at once rather than at its next regular refresh.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.MutationObserver) return;
  var pending = null;

  function placedByLiveJs(records) {
    // live.js replaces the line itself; a redraw of the whole panel adds the panel instead.
    return records.some(function (r) {
      return Array.prototype.some.call(r.addedNodes, function (n) {
        return n.classList && (n.classList.contains("presence") || n.classList.contains("speaking"));
      });
    });
  }

  new MutationObserver(function (records) {
    if (pending || !placedByLiveJs(records)) return;
    pending = setTimeout(function () {
      pending = null;
      var panel = document.getElementById("console-people");
      if (panel && window.htmx) window.htmx.trigger(panel, "refresh");
    }, 300);
  }).observe(live, { childList: true, subtree: true });
})();
