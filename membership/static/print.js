// The Print button of the receipt page (no inline script: the Content-Security-Policy allows only 'self').
document.querySelectorAll("[data-print]").forEach(function (button) {
  button.addEventListener("click", function () { window.print(); });
});
