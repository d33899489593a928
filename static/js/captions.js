// Roundtable caption view: size, lines and colours change at once and are saved to the
// profile; the view follows the newest caption unless the reader has scrolled up; full
// screen on request. The captions page reloads when its person changes room.
// It also loads the microphone's script (mic.js) when the person first presses one of its
// controls (or Alt+M, once they have agreed), so that people who never speak never download it.
(function () {
  "use strict";
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"];
  var panel = null, shown = null, timer = 0;
  function all(sel, f) { Array.prototype.forEach.call(document.querySelectorAll(sel), f); }
  function has(el, name) { return el.classList && el.classList.contains(name); }

  function look(f) {
    all("[data-cap-size]", function (el) {
      el.setAttribute("data-cap-size", f.elements.size_percent.value);
      el.setAttribute("data-cap-lines", f.elements.lines.value);
      el.setAttribute("data-cap-contrast", f.elements.contrast.value);
    });
    follow(true);
  }

  function save(f) {
    var note = f.querySelector(".caption-saved");
    fetch(f.action, { method: "POST", body: new FormData(f), credentials: "same-origin", redirect: "manual", headers: { "X-CSRF-Token": csrf, "HX-Request": "true" } })
      .then(function (r) { return r.ok || r.type === "opaqueredirect"; }, function () {})
      .then(function (ok) { note.textContent = ok ? "Saved." : "Not saved: shown like this on this page only."; });
  }

  function follow(force) {
    all(".caption-log", function (log) {
      if (force) log.away = false;
      if (!log.away) log.scrollTop = log.scrollHeight;
    });
  }

  var micLoading = false;
  function micButtons() {
    var p = document.getElementById("mic"), live = document.getElementById("live"), agreed = false;
    if (micLoading || !p || !live || !p.querySelector(".mic-consent")) return;
    var ok = !!(navigator.mediaDevices && window.AudioWorkletNode);
    try { agreed = localStorage.getItem("rtMicConsent:" + live.getAttribute("data-base")) === "1"; } catch (e) { /* ask */ }
    p.querySelector(".mic-consent").hidden = !ok || agreed;
    p.querySelector(".mic-controls").hidden = !ok || !agreed;
    if (!ok) p.querySelector(".mic-message").textContent = "This browser cannot send your microphone.";
    var ptt = false;
    try { ptt = localStorage.getItem("rtPushToTalk") === "1"; } catch (e) { /* off */ }
    p.querySelector(".mic-ptt").checked = ptt;
    p.querySelector(".mic-hold").hidden = !ptt;
  }

  function loadMic(pressed) {
    micLoading = true;
    document.getElementById("live").setAttribute("data-mic-pressed", pressed);
    var script = document.createElement("script");
    script.src = document.getElementById("mic").getAttribute("data-script");
    script.onerror = function () {
      micLoading = false;
      all("#mic .mic-message", function (el) { el.textContent = "The microphone could not be started: check your connection and try again."; });
    };
    document.head.appendChild(script);
  }

  function micControl(el) {
    if (has(el, "mic-agree")) return "agree";
    if (has(el, "mic-off")) return "off";
    if (has(el, "mic-ptt")) return "ptt";
    if (has(el, "mic-hold")) return "hold";
    return "toggle";
  }

  function init() {
    micButtons();
    if (has(document.body, "caption-page") && !document.querySelector("#room.caption-full")) return location.reload();
    var now = document.getElementById("captions");
    if (now === panel) return follow();
    panel = now;
    if (!panel) return;
    var sw = panel.querySelector(".caption-switch");
    if (shown !== null) sw.open = shown;
    panel.querySelector(".caption-fullscreen").hidden = !document.fullscreenEnabled;
    follow(true);
  }

  document.addEventListener("change", function (e) {
    var f = e.target.form;
    if (!f || !has(f, "caption-prefs")) return;
    look(f);
    clearTimeout(timer);
    timer = setTimeout(function () { save(f); }, 500);
  });
  document.addEventListener("submit", function (e) {
    if (!has(e.target, "caption-prefs")) return;
    e.preventDefault();
    clearTimeout(timer);
    save(e.target);
  });
  document.addEventListener("toggle", function (e) {
    if (has(e.target, "caption-switch")) { shown = e.target.open; follow(true); }
  }, true);
  document.addEventListener("scroll", function (e) {
    var log = e.target;
    if (!has(log, "caption-log")) return;
    log.away = log.scrollTop + log.clientHeight < log.scrollHeight - 8;
    var b = log.parentNode.querySelector(".caption-newest");
    if (b) b.hidden = !log.away;
  }, true);
  document.addEventListener("click", function (e) {
    var b = e.target, mic = !micLoading && b.closest && b.closest("#mic button, #mic .mic-ptt");
    if (mic) return loadMic(micControl(mic));
    if (has(b, "caption-newest")) { b.hidden = true; follow(true); }
    if (!has(b, "caption-fullscreen")) return;
    if (document.fullscreenElement) document.exitFullscreen(); else panel.requestFullscreen();
  });
  // Alt+M (mute and unmute) before the microphone's script is here: load it, or show the consent.
  document.addEventListener("keydown", function (e) {
    var p = document.getElementById("mic");
    if (micLoading || !p || !e.altKey || e.ctrlKey || e.metaKey || e.code !== "KeyM") return;
    e.preventDefault();
    var agree = p.querySelector(".mic-agree");
    if (!p.querySelector(".mic-controls").hidden) return loadMic("toggle");
    if (agree && !p.querySelector(".mic-consent").hidden) {
      agree.focus();
      p.querySelector(".mic-message").textContent = "To speak, first read this and agree to turn on your microphone.";
    }
  });
  document.addEventListener("fullscreenchange", function () {
    all(".caption-fullscreen", function (b) { b.textContent = document.fullscreenElement ? "Leave full screen" : "Full screen"; });
    follow(true);
  });
  new MutationObserver(init).observe(document.getElementById("live") || document.body, { childList: true, subtree: true });
  init();
})();
