// Evidence upload: each chosen file is sent on its own request with a progress bar, a
// cancel button and its own image description. Without this script the form still works.
(function () {
  "use strict";
  var IMAGE = /\.(jpe?g|jfif|png|webp|gif|heic|heif)$/i;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }

  function size(bytes) {
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.ceil(bytes / 1024) + " KB";
  }

  function setup(form) {
    var input = form.querySelector('input[type="file"]');
    var list = form.querySelector("[data-upload-list]");
    var status = form.querySelector("[data-upload-status]");
    var altField = form.querySelector("[data-alt-field]");
    var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10);
    var rows = [];
    if (altField) altField.hidden = true; // each image gets its own description below

    input.addEventListener("change", function () {
      list.textContent = "";
      rows = Array.prototype.map.call(input.files, function (file, i) {
        var li = el("li", { "class": "upload-item" });
        li.appendChild(el("span", { "class": "upload-name" }, file.name + " (" + size(file.size) + ")"));
        var row = { file: file, li: li, alt: null };
        if (IMAGE.test(file.name) || /^image\//.test(file.type)) {
          var id = "upload-alt-" + i;
          li.appendChild(el("label", { "for": id }, "Describe " + file.name + " for people who cannot see it (required). For handwritten notes, type what they say."));
          row.alt = el("textarea", { id: id, rows: "2", maxlength: "1000", required: "" });
          li.appendChild(row.alt);
        }
        row.bar = el("progress", { max: "100", value: "0", "aria-label": "Upload of " + file.name });
        row.note = el("span", { "class": "upload-note" });
        li.appendChild(row.bar);
        li.appendChild(row.note);
        list.appendChild(li);
        return row;
      });
      list.hidden = rows.length === 0;
    });

    form.addEventListener("submit", function (event) {
      if (!window.FormData || !rows.length) return; // the plain form reports the missing file
      event.preventDefault();
      var problem = null;
      rows.forEach(function (row) {
        row.note.textContent = "";
        if (row.file.size > maxBytes) {
          row.note.textContent = "Too large: the limit is " + size(maxBytes) + ".";
          problem = problem || row.bar;
        } else if (row.alt && !row.alt.value.trim()) {
          row.note.textContent = "Please describe this image first.";
          row.alt.setAttribute("aria-invalid", "true");
          problem = problem || row.alt;
        }
      });
      if (problem) {
        status.textContent = "Some files need attention before they can be sent.";
        if (problem.focus) problem.focus();
        return;
      }
      sendAll();
    });

    function sendAll() {
      var done = 0, failed = 0, index = 0;
      var button = form.querySelector('button[type="submit"]');
      button.disabled = true; // one batch at a time
      input.disabled = true;
      var title = form.elements.title.value.trim();
      status.textContent = "Uploading " + rows.length + (rows.length === 1 ? " file…" : " files…");
      function next() {
        if (index >= rows.length) {
          button.disabled = false;
          input.disabled = false;
          status.textContent = done + " of " + rows.length + " uploaded" + (failed ? "; " + failed + " not sent (see below)." : ".");
          if (done) {
            var link = el("a", { href: form.action.replace(/\/upload$/, "") + "?done=uploaded" }, "See them on the board");
            status.appendChild(document.createTextNode(" "));
            status.appendChild(link);
          }
          return;
        }
        var row = rows[index], number = ++index;
        var data = new FormData();
        ["csrf_token", "session_id", "description", "visibility"].forEach(function (name) {
          data.append(name, form.elements[name].value);
        });
        if (form.elements.from_trio.checked) data.append("from_trio", "1");
        if (form.elements.kind.checked) data.append("kind", "poster");
        data.append("title", title && rows.length > 1 ? title + " (" + number + " of " + rows.length + ")" : title);
        if (row.alt) data.append("alt_text", row.alt.value);
        data.append("files", row.file, row.file.name);
        var xhr = new XMLHttpRequest();
        var cancel = el("button", { type: "button", "class": "link-button" }, "Cancel");
        cancel.addEventListener("click", function () { xhr.abort(); });
        row.li.appendChild(cancel);
        xhr.open("POST", form.action);
        xhr.setRequestHeader("Accept", "application/json");
        xhr.setRequestHeader("X-CSRF-Token", form.elements.csrf_token.value);
        xhr.upload.onprogress = function (e) {
          if (e.lengthComputable) {
            var pct = Math.floor((e.loaded / e.total) * 100);
            row.bar.value = pct;
            row.note.textContent = pct + "%";
          }
        };
        function finish(ok, message) {
          cancel.remove();
          if (ok) { done++; row.bar.value = 100; } else { failed++; }
          row.note.textContent = message;
          next();
        }
        xhr.onload = function () {
          var body = {};
          try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON: a proxy page */ }
          if (xhr.status === 201) finish(true, "Uploaded.");
          else finish(false, "Not sent: " + (body.detail || "the server refused it (" + xhr.status + ")."));
        };
        xhr.onerror = function () { finish(false, "Not sent: the connection failed. Try again."); };
        xhr.onabort = function () { finish(false, "Cancelled."); };
        xhr.send(data);
      }
      next();
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("form[data-upload]"), setup);
})();
