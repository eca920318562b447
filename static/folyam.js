// Folyam's only hand-written script: what htmx attributes and server-rendered HTML cannot do.
// Everything works without it, except copying, the keyboard shortcuts and following the answer.
const query = () => document.getElementById("composer-query");
const stopButton = () => document.querySelector("#composer .composer__stop");

// Copy: a code block's code, or a whole answer's markdown (kept in an inert <template>).
document.addEventListener("click", async (event) => {
  const button = event.target.closest?.(".codeblock__copy, .answer__copy");
  if (!button) return;
  const text = button.classList.contains("answer__copy")
    ? button.parentElement.querySelector("template.answer__source")?.content.textContent
    : button.closest(".codeblock")?.querySelector("pre code")?.textContent;
  if (text == null) return;
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => { button.textContent = label; }, 1500);
});

// Composer keys: Enter sends, Shift+Enter is a new line (never while an IME composition is open);
// while an answer streams Enter does nothing (Stop is the button), and Esc stops it.
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && stopButton()) {
    event.preventDefault();
    stopButton().click();
    return;
  }
  const box = event.target.closest?.("#composer-query");
  if (!box || event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  if (!stopButton()) box.form.requestSubmit();
});

// Focus goes back to the question box after Stop …
document.addEventListener("click", (event) => {
  if (event.target.closest?.(".composer__stop")) query()?.focus();
});
// … and after a question was sent, which also empties the box.
document.addEventListener("htmx:after:request", (event) => {
  const form = event.target;
  if (form?.id !== "composer" || !(event.detail?.ctx?.response?.status < 300)) return;
  form.elements.query.value = "";
  query()?.focus();
});

// Follow the answer: while the reader is at the bottom, keep the newest text in view; when they scroll
// up, stop and offer "Jump to latest"; back at the bottom, follow again.
let following = true;
const atBottom = () => innerHeight + scrollY >= document.documentElement.scrollHeight - 48;
const jumpButton = () => document.getElementById("jump-latest");
const toBottom = () => scrollTo({ top: document.documentElement.scrollHeight });
addEventListener("scroll", () => {
  following = atBottom();
  jumpButton()?.toggleAttribute("hidden", following);
}, { passive: true });
document.addEventListener("click", (event) => {
  if (!event.target.closest?.("#jump-latest")) return;
  following = true;
  toBottom();
  jumpButton().hidden = true;
});
// The thinking block closes once, as the answer starts: its summary comes back marked (a partial swap can
// replace the small summary, but cannot drop the `open` of the <details> whose content it keeps).
const closeThinking = () => {
  for (const summary of document.querySelectorAll("summary[data-closes]")) {
    summary.removeAttribute("data-closes");
    if (summary.parentElement) summary.parentElement.open = false;
  }
};
document.addEventListener("DOMContentLoaded", () => {
  const thread = document.getElementById("thread");
  if (!thread) return;
  new MutationObserver(() => {
    closeThinking();
    if (following) toBottom();
    else jumpButton()?.removeAttribute("hidden");
  }).observe(thread, { childList: true, subtree: true, characterData: true });
  toBottom();
});
