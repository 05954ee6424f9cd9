// Keyboard shortcuts of the labelling page: 1, 2, 3, s choose; u undoes. No other script runs
// here (the Content-Security-Policy allows only this file), and nothing is sent but the form.
"use strict";
document.addEventListener("keydown", function (event) {
  var target = event.target;
  if (target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT")) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  var button = document.querySelector('button[data-key="' + event.key.toLowerCase() + '"]');
  if (!button) return;
  event.preventDefault();
  button.form.requestSubmit(button);
});
