// Folyam's only hand-written script: the copy button of code blocks (one delegated listener).
document.addEventListener("click", async (event) => {
  const button = event.target.closest?.(".codeblock__copy");
  const code = button?.closest(".codeblock")?.querySelector("pre code");
  if (!code) return;
  try {
    await navigator.clipboard.writeText(code.textContent);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
});
