// Highlighting words in an item's text (an element marked data-excerpt-source="note" etc.)
// fills the coding form's source, excerpt and positions. Without this script the organiser
// pastes the words instead; the server finds them either way (app/evidence/coding.py).
(() => {
  "use strict";
  const form = document.getElementById("coding-form");
  if (!form) return;
  const source = form.elements.namedItem("source");
  const excerpt = form.elements.namedItem("excerpt");
  const start = form.elements.namedItem("start");
  const end = form.elements.namedItem("end");
  const status = document.getElementById("coding-selection");

  function offsetIn(root, node, offset) {
    const range = document.createRange();
    range.selectNodeContents(root);
    range.setEnd(node, offset);
    return range.toString().length;
  }

  function capture() {
    const selection = document.getSelection();
    if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return;
    const range = selection.getRangeAt(0);
    const common = range.commonAncestorContainer;
    const element = common.nodeType === Node.ELEMENT_NODE ? common : common.parentElement;
    const root = element && element.closest("[data-excerpt-source]");
    if (!root || form.contains(root)) return;
    const text = range.toString();
    if (!text.trim()) return;
    const option = Array.from(source.options).find(
      (o) => o.value === root.dataset.excerptSource,
    );
    if (!option) return;
    // Without the spaces and line ends a double or triple click takes along.
    const words = text.trim();
    const lead = text.length - text.trimStart().length;
    const trail = text.length - text.trimEnd().length;
    source.value = option.value;
    excerpt.value = words;
    start.value = String(offsetIn(root, range.startContainer, range.startOffset) + lead);
    end.value = String(offsetIn(root, range.endContainer, range.endOffset) - trail);
    const oneLine = words.replace(/\s+/g, " ");
    const shown = oneLine.length > 80 ? `${oneLine.slice(0, 77)}…` : oneLine;
    status.textContent = `Excerpt taken from ${option.textContent.replace(/^An excerpt of /, "")}: “${shown}”. Choose the themes and add the coding below.`;
  }

  document.addEventListener("mouseup", capture);
  document.addEventListener("keyup", (event) => {
    if (event.shiftKey || event.key === "Shift") capture();
  });
  // Typing or pasting the words by hand: positions from an earlier highlight no longer apply.
  excerpt.addEventListener("input", () => {
    start.value = "";
    end.value = "";
    status.textContent = "";
  });
})();
