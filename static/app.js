// Every page: loaded in <head> without defer, so that the "js" class is on <html> before the
// page is drawn (CSS shows the JavaScript-only parts and hides the no-JS ones by it).
"use strict";
document.documentElement.classList.add("js");

// Copy buttons: <button class="copy" data-copy="INPUT_ID"> copies that input's value.
// Delegated from the document, so buttons added later (upload results) work too.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const input = document.getElementById(button.dataset.copy);
  if (!input) return;
  let copied = false;
  try {
    await navigator.clipboard.writeText(input.value);
    copied = true;
  } catch {
    // No async clipboard (plain http on another host, or permission refused).
    input.focus();
    input.select();
    try { copied = document.execCommand("copy"); } catch { copied = false; }
  }
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  button.textContent = copied ? "Copied" : "Press Ctrl+C";
  button.classList.toggle("copied", copied);
  if (!copied) { input.focus(); input.select(); }
  clearTimeout(button.copyTimer);
  button.copyTimer = setTimeout(() => {
    button.textContent = label;
    button.classList.remove("copied");
  }, 1500);
});
