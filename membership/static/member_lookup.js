// Suggestions for the "member number, email or name" fields (event registration, walk-in): the
// member search as staff type; choosing a suggestion puts the member's number in the field. No
// inline script, so the Content-Security-Policy stays script-src 'self'. Without JavaScript the
// form still works: several name matches come back as a list to choose from.
(function () {
  "use strict";
  document.querySelectorAll("input[data-member-lookup]").forEach(function (input) {
    var list = document.createElement("datalist");
    list.id = input.id + "-suggestions";
    input.setAttribute("list", list.id);
    input.insertAdjacentElement("afterend", list);
    var timer = null;
    var asked = "";
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      var q = input.value.trim();
      if (q.length < 2 || q === asked) {
        return;
      }
      timer = window.setTimeout(function () {
        asked = q;
        fetch(input.dataset.memberLookup + "?q=" + encodeURIComponent(q),
              {headers: {"Accept": "application/json"}, credentials: "same-origin"})
          .then(function (response) { return response.ok ? response.json() : {members: []}; })
          .then(function (data) {
            if (input.value.trim() !== q) {
              return;  // typed on meanwhile: a newer answer follows
            }
            list.replaceChildren();
            data.members.forEach(function (m) {
              var option = document.createElement("option");
              option.value = m.member_number;
              option.label = m.label;
              option.textContent = m.label;
              list.appendChild(option);
            });
          })
          .catch(function () { /* suggestions are a help only */ });
      }, 200);
    });
  });
})();
