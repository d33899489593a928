// Roundtable stage (docs/stage.md): the live slide arrives as a stage.slide event that
// live.js places (#stage-live); this script announces it, lets a viewer look back at earlier
// slides without losing the live one, and gives presenters arrow keys and fresh controls.
(function () {
  "use strict";
  var looking = null; // {deck, number} while the viewer looks back

  function $(id) { return document.getElementById(id); }
  function base() { var s = $("stage"); return s ? s.getAttribute("data-stage-base") : null; }
  function num(el, name) { return el ? +el.getAttribute("data-" + name) || 0 : 0; }
  function announce(text) {
    var el = $("stage-status");
    if (!el) return;
    el.textContent = "";
    setTimeout(function () { el.textContent = text; }, 30);
  }
  function get(url) {
    return fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; });
  }
  function swapIn(id, html) {
    var old = $(id);
    if (!old || !html) return null;
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    var node = t.content.firstElementChild;
    old.replaceWith(node);
    if (window.htmx) window.htmx.process(node);
    return node;
  }
  function button(kind) { return document.querySelector('[data-stage-look="' + kind + '"]'); }

  // The viewer's buttons follow what they look at: back from it, forward to the live slide.
  function updateNav() {
    var live = $("stage-live"), stage = $("stage");
    if (!live || !stage) return;
    var deck = num(live, "deck"), liveNumber = num(live, "number");
    stage.classList.toggle("stage-idle", !deck);
    var at = looking ? looking.number : liveNumber;
    button("back").disabled = !deck || at <= 1;
    button("forward").hidden = !looking;
    button("live").hidden = !looking;
    if (looking) button("live").textContent = "Back to live (slide " + liveNumber + ")";
  }

  function look(number) {
    var live = $("stage-live"), deck = num(live, "deck");
    if (!deck) return;
    if (number >= num(live, "number")) return backToLive();
    get(base() + "/look?deck=" + deck + "&n=" + number).then(function (html) {
      if (!html) return;
      var old = $("stage-look");
      if (old) old.remove();
      live.insertAdjacentHTML("afterend", html.trim());
      live.hidden = true;
      looking = { deck: deck, number: number };
      updateNav();
      announce("Looking back: slide " + number + ". The presenter is on slide " + num(live, "number") + ".");
    });
  }

  function backToLive() {
    var old = $("stage-look"), live = $("stage-live");
    if (old) old.remove();
    looking = null;
    if (live) live.hidden = false;
    updateNav();
    if (live && num(live, "deck")) announce("Back to live: slide " + describe(live));
  }

  // "3 of 10: Title"
  function describe(live) {
    var title = live.getAttribute("data-title");
    return num(live, "number") + " of " + num(live, "count") + (title ? ": " + title : "");
  }

  // The next slide's image is fetched while this one is shown (at a moment of its own for
  // each viewer, so a room does not ask all at once), so that "Next" shows at once from the
  // browser's cache. The same srcset and sizes make the browser pick the same width.
  var prefetchTimer = null;
  function prefetchNext() {
    clearTimeout(prefetchTimer);
    var live = $("stage-live"), room = $("room");
    var next = live && live.getAttribute("data-next-srcset");
    if (!next || (room && room.classList.contains("text-only"))) return;
    prefetchTimer = setTimeout(function () {
      var img = new Image();
      img.decoding = "async";
      img.sizes = (live.querySelector("img.slide-image") || {}).sizes || "100vw";
      img.srcset = next;
    }, 300 + Math.random() * 1500);
  }

  function slideChanged() {
    var live = $("stage-live");
    if (!live) return;
    prefetchNext();
    if (looking && num(live, "deck") !== looking.deck) backToLive();
    if (looking) live.hidden = true;
    updateNav();
    if (!looking) announce(num(live, "deck") ? "Slide " + describe(live) : "The slides have stopped.");
    if ($("stage-controls")) get(base() + "/controls").then(redrawControls);
  }

  // The presenter's focus stays on the control they used: Next stays on Next (on Previous
  // once Next is disabled at the last slide), a slide in the list on that slide.
  function redrawControls(html) {
    var active = document.activeElement, key = null, number = null;
    if (active && active.closest && active.closest("#stage-controls")) {
      key = active.getAttribute("data-stage-key");
      var form = active.form;
      if (!key && form && form.closest(".thumbnails")) number = form.elements.number.value;
    }
    var node = swapIn("stage-controls", html);
    if (!node || (key === null && number === null)) return;
    var target = key ? node.querySelector('[data-stage-key="' + key + '"]:not([disabled])') ||
      node.querySelector('[data-stage-key="prev"]:not([disabled])') :
      node.querySelector('.thumbnails input[name="number"][value="' + number + '"]');
    if (target && target.tagName === "INPUT") target = target.form.querySelector("button");
    if (target) target.focus();
  }

  document.addEventListener("roundtable:event", function (e) {
    if (e.detail && e.detail.t === "stage.slide") slideChanged();
  });
  // After a resync of the room (missed too much), or in a new room: the stage as it is now.
  document.addEventListener("roundtable:resync", function (e) {
    var room = $("room");
    if (!base() || !room || e.detail !== room.getAttribute("data-room")) return;
    get(base()).then(function (html) { looking = null; swapIn("stage", html); updateNav(); });
  });
  document.addEventListener("roundtable:room", function () { looking = null; updateNav(); });

  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("[data-stage-look]");
    if (!b) return;
    var live = $("stage-live"), at = looking ? looking.number : num(live, "number");
    var kind = b.getAttribute("data-stage-look");
    if (kind === "back") look(at - 1);
    else if (kind === "forward") look(at + 1);
    else backToLive();
  });

  // Presenters: arrow keys and Page Up/Down, unless typing or scrolling a text region.
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey || !$("stage-controls")) return;
    var t = e.target;
    if (t.closest && t.closest("input, textarea, select, [contenteditable], .slide-text")) return;
    var key = { ArrowRight: "next", PageDown: "next", ArrowLeft: "prev", PageUp: "prev" }[e.key];
    var b = key && document.querySelector('[data-stage-key="' + key + '"]');
    if (!b || b.disabled) return;
    e.preventDefault();
    b.form.requestSubmit();
  });

  document.addEventListener("htmx:afterRequest", function (e) {
    var form = e.detail.elt;
    if (!form || !form.closest || !form.closest("#stage-controls") || e.detail.successful) return;
    var xhr = e.detail.xhr;
    announce(xhr && xhr.status ? xhr.responseText : "Not changed: you seem to be offline. Try again.");
  });

  // The slide's share of the width beside captions and video, kept in this browser.
  function applySize(value) {
    var layout = $("stage-layout"), input = document.querySelector("[data-stage-size]");
    if (!layout || !input || !value) return;
    input.value = value;
    layout.style.setProperty("--stage-share", value + "fr");
  }
  document.addEventListener("input", function (e) {
    if (!e.target.hasAttribute || !e.target.hasAttribute("data-stage-size")) return;
    applySize(e.target.value);
    try { localStorage.setItem("roundtable.stageSize", e.target.value); } catch (err) { /* private mode */ }
  });
  function restoreSize() {
    try { applySize(localStorage.getItem("roundtable.stageSize")); } catch (err) { /* private mode */ }
  }
  document.addEventListener("roundtable:room", restoreSize);

  restoreSize();
  updateNav();
  prefetchNext();
})();
