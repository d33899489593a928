// Roundtable live page: keeps keyboard focus where it was when a live update redraws the part
// of the page it was in (moving to another room redraws the room; taking on a help request
// redraws that request). Focus goes back to the same control, or to the nearest control left
// in its place, instead of falling to the top of the page. It never moves focus otherwise.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.MutationObserver) return;
  var FOCUSABLE = "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), " +
    "select:not([disabled]), textarea:not([disabled]), summary, [tabindex]";
  var last = null;
  live.addEventListener("focusin", function (e) { last = e.target; });
  new MutationObserver(function () {
    if (!last || last.isConnected) return;
    var active = document.activeElement;
    if (active && active !== document.body) { last = null; return; }
    // The removed control, or its nearest ancestor with an id, in the redrawn part.
    var place = null;
    for (var el = last; el && !place; el = el.parentElement) {
      if (el.id) place = document.getElementById(el.id);
    }
    last = null;
    if (!place) return;
    var target = place.matches(FOCUSABLE) ? place : place.querySelector(FOCUSABLE);
    if (target) target.focus();
  }).observe(live, { childList: true, subtree: true });
})();
