// Recording a voice note for the group's evidence (templates/evidence/_voice_note.html).
// The section stays hidden in browsers that cannot record; the upload form takes sound
// files there. The recording is sent like an upload, to the same address.
(function () {
  "use strict";
  var root = document.querySelector("[data-voice-note]");
  if (!root) return;
  if (typeof window.MediaRecorder === "undefined" || !navigator.mediaDevices ||
      typeof navigator.mediaDevices.getUserMedia !== "function") return;

  // What the browser can record, best first, with the file extension the server expects.
  var FORMATS = [
    ["audio/webm;codecs=opus", "webm"],
    ["audio/ogg;codecs=opus", "ogg"],
    ["audio/mp4", "m4a"],
    ["audio/webm", "webm"],
  ];
  var format = null;
  for (var i = 0; i < FORMATS.length; i++) {
    if (typeof MediaRecorder.isTypeSupported !== "function" || MediaRecorder.isTypeSupported(FORMATS[i][0])) {
      format = FORMATS[i];
      break;
    }
  }
  if (!format) return;

  var LIMIT_SECONDS = 10 * 60;
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"];
  var form = root.querySelector("[data-voice-form]");
  var startButton = root.querySelector("[data-voice-start]");
  var stopButton = root.querySelector("[data-voice-stop]");
  var sendButton = root.querySelector("[data-voice-send]");
  var state = root.querySelector("[data-voice-state]");
  var timer = root.querySelector("[data-voice-timer]");
  var preview = root.querySelector("[data-voice-preview]");
  var errorBox = root.querySelector("[data-voice-error]");
  var title = form.elements.namedItem("title");
  var titleError = document.getElementById("voice-error-title");

  var recorder = null;
  var stream = null;
  var chunks = [];
  var recording = null; // the finished Blob
  var previewUrl = null;
  var startedAt = 0;
  var ticker = null;
  var sending = false;

  function say(text) { state.textContent = text; }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  function clock(seconds) {
    var s = Math.floor(seconds);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function spoken(seconds) {
    var s = Math.round(seconds);
    var m = Math.floor(s / 60);
    var parts = [];
    if (m) parts.push(m + (m === 1 ? " minute" : " minutes"));
    if (s % 60 || !m) parts.push((s % 60) + (s % 60 === 1 ? " second" : " seconds"));
    return parts.join(" ");
  }

  function elapsed() { return (Date.now() - startedAt) / 1000; }

  function tick() {
    var seconds = elapsed();
    timer.textContent = clock(seconds) + " of " + clock(LIMIT_SECONDS);
    if (seconds >= LIMIT_SECONDS) stop(true);
  }

  function releaseMicrophone() {
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
  }

  function clearRecording() {
    recording = null;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    preview.removeAttribute("src");
    preview.hidden = true;
    sendButton.disabled = true;
  }

  function start() {
    showError("");
    clearRecording();
    startButton.disabled = true;
    say("Asking for your microphone…");
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (s) {
      stream = s;
      chunks = [];
      try {
        recorder = new MediaRecorder(stream, { mimeType: format[0] });
      } catch (e) {
        recorder = new MediaRecorder(stream);
      }
      recorder.addEventListener("dataavailable", function (event) {
        if (event.data && event.data.size) chunks.push(event.data);
      });
      recorder.addEventListener("stop", finished);
      recorder.start(1000);
      startedAt = Date.now();
      ticker = window.setInterval(tick, 500);
      tick();
      stopButton.disabled = false;
      startButton.textContent = "Start recording";
      say("Recording. Press “Stop recording” when you have finished (10 minutes at most).");
      stopButton.focus();
    }).catch(function (error) {
      releaseMicrophone();
      startButton.disabled = false;
      say("Not recording.");
      var denied = error && (error.name === "NotAllowedError" || error.name === "SecurityError");
      showError(denied
        ? "Your browser did not allow the microphone. Allow it for this site in the browser's settings, then try again, or upload a sound file instead."
        : "We could not find a microphone to record with. Check one is connected, or upload a sound file instead.");
    });
  }

  function stop(atLimit) {
    if (!recorder || recorder.state === "inactive") return;
    window.clearInterval(ticker);
    ticker = null;
    stopButton.disabled = true;
    recorder.stoppedAtLimit = Boolean(atLimit);
    recorder.stop();
  }

  function finished() {
    var seconds = elapsed();
    var atLimit = recorder.stoppedAtLimit;
    var type = (recorder.mimeType || format[0]).split(";")[0];
    releaseMicrophone();
    recorder = null;
    recording = new Blob(chunks, { type: type });
    chunks = [];
    previewUrl = URL.createObjectURL(recording);
    preview.src = previewUrl;
    preview.hidden = false;
    sendButton.disabled = false;
    startButton.disabled = false;
    startButton.textContent = "Record again";
    say((atLimit ? "Stopped at the 10-minute limit. " : "Recording stopped. ") +
      "It is " + spoken(seconds) + " long. Listen back, then send it, or record again.");
  }

  function extensionFor(type) {
    if (type.indexOf("ogg") !== -1) return "ogg";
    if (type.indexOf("mp4") !== -1 || type.indexOf("aac") !== -1) return "m4a";
    return type.indexOf("webm") !== -1 ? "webm" : format[1];
  }

  function send(event) {
    event.preventDefault();
    if (sending || !recording) return;
    showError("");
    titleError.hidden = true;
    title.removeAttribute("aria-invalid");
    title.removeAttribute("aria-describedby");
    if (!title.value.trim()) {
      titleError.textContent = "Enter a title for your voice note.";
      titleError.hidden = false;
      title.setAttribute("aria-invalid", "true");
      title.setAttribute("aria-describedby", "voice-error-title");
      title.focus();
      return;
    }
    var data = new FormData();
    data.append("csrf_token", csrf); // first, as the upload form's own field is
    data.append("title", title.value.trim());
    // The server works out the kind from the file (sound); "auto" is the upload form's default.
    data.append("kind", "auto");
    data.append("session_id", form.elements.namedItem("session_id").value);
    if (form.elements.namedItem("from_trio").checked) data.append("from_trio", "1");
    var visibility = form.querySelector("input[name=visibility]:checked");
    data.append("visibility", visibility ? visibility.value : "group");
    data.append("files", recording, "voice-note." + extensionFor(recording.type));

    sending = true;
    sendButton.disabled = true;
    startButton.disabled = true;
    say("Sending your voice note…");
    fetch(root.getAttribute("data-upload-url"), {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { ok: response.ok, status: response.status, body: body };
      });
    }).then(function (result) {
      sending = false;
      startButton.disabled = false;
      if (!result.ok) {
        sendButton.disabled = false;
        say("Your voice note was not sent.");
        showError(messageOf(result.body) || ("Your voice note was not sent (error " + result.status + "). Please try again."));
        return;
      }
      var item = result.body.items && result.body.items[0];
      clearRecording();
      title.value = "";
      startButton.textContent = "Start recording";
      say("Your voice note has been sent. It will be transcribed shortly.");
      if (item && item.url) {
        var link = document.createElement("a");
        link.href = item.url;
        link.textContent = "Open “" + item.title + "”";
        state.appendChild(document.createTextNode(" "));
        state.appendChild(link);
      }
    }).catch(function () {
      sending = false;
      sendButton.disabled = false;
      startButton.disabled = false;
      say("Your voice note was not sent.");
      showError("We could not reach the server. Check your connection, then press “Send the voice note” again.");
    });
  }

  function messageOf(body) {
    if (!body) return "";
    if (typeof body.detail === "string") return body.detail;
    if (body.errors && typeof body.errors === "object") {
      return Object.keys(body.errors).map(function (k) { return body.errors[k]; }).join(" ");
    }
    return typeof body.message === "string" ? body.message : "";
  }

  startButton.addEventListener("click", start);
  stopButton.addEventListener("click", function () { stop(false); });
  form.addEventListener("submit", send);
  window.addEventListener("pagehide", releaseMicrophone);
  root.hidden = false;
})();
