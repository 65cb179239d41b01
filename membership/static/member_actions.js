// Join and renewal forms: show the new term's dates for the chosen plan, propose its fee, and hide
// the payment fields when the payment is recorded later. The forms work without this script.
(function () {
  "use strict";
  document.querySelectorAll("[data-term-form]").forEach(function (form) {
    var select = form.querySelector("[data-plan-select]");
    var datesText = form.querySelector("[data-dates-text]");
    var shown = form.querySelector("[data-shown-dates]");
    var amount = form.querySelector("input[name=amount]");
    var paymentFields = form.querySelector("[data-payment-fields]");
    var lastFee = select && select.selectedOptions[0] ? select.selectedOptions[0].dataset.fee : null;

    if (select) {
      select.addEventListener("change", function () {
        var option = select.selectedOptions[0];
        if (!option) { return; }
        if (datesText && option.dataset.datesText) { datesText.textContent = option.dataset.datesText; }
        if (shown && option.dataset.dates) { shown.value = option.dataset.dates; }
        // Propose the new plan's fee unless staff typed another amount.
        if (amount && option.dataset.fee && (amount.value === "" || amount.value === lastFee)) {
          amount.value = option.dataset.fee;
        }
        lastFee = option.dataset.fee;
      });
    }

    function togglePayment() {
      var later = form.querySelector("input[name=payment_mode][value=later]");
      if (paymentFields && later) { paymentFields.classList.toggle("d-none", later.checked); }
    }
    form.querySelectorAll("input[name=payment_mode]").forEach(function (radio) {
      radio.addEventListener("change", togglePayment);
    });
    togglePayment();
  });
})();
