/* Progressive enhancement only: every page works without this file.
   - On narrow screens the search filters start folded (without script they stay open).
   - Autocomplete: the search box's <datalist> is filled with concepts of the vocabularies
     (cancer conditions, modalities, body parts) from GET /api/v1/vocabularies/{name}?q=. */
(function () {
  "use strict";
  var narrow = window.matchMedia && window.matchMedia("(max-width: 55.99em)");
  if (!narrow) { return; }
  Array.prototype.forEach.call(document.querySelectorAll("details[data-collapse-narrow]"),
    function (details) {
      var apply = function () { details.open = !narrow.matches; };
      apply();
      if (narrow.addEventListener) { narrow.addEventListener("change", apply); }
    });
})();

(function () {
  "use strict";
  var input = document.querySelector("input[data-suggest]");
  if (!input || !window.fetch || !input.list) { return; }
  var list = input.list;
  var template = input.getAttribute("data-suggest");
  var names = (input.getAttribute("data-vocabularies") || "").split(" ");
  var kinds = { conditions: "Cancer condition", modalities: "Imaging modality",
                body_parts: "Body part" };
  var timer = 0, asked = "", controller = null;

  function fill(answers) {
    var seen = {};
    list.textContent = "";
    answers.forEach(function (answer) {
      (answer.suggestions || []).forEach(function (s) {
        if (seen[s.label]) { return; }
        seen[s.label] = true;
        var option = document.createElement("option");
        option.value = s.label;
        option.label = kinds[s.vocabulary] || s.vocabulary;
        list.appendChild(option);
      });
    });
  }

  function suggest() {
    var q = input.value.trim();
    if (q.length < 2 || q === asked) { return; }
    asked = q;
    if (controller) { controller.abort(); }
    controller = window.AbortController ? new AbortController() : null;
    var options = { headers: { Accept: "application/json" } };
    if (controller) { options.signal = controller.signal; }
    Promise.all(names.map(function (name) {
      var url = template.replace("NAME", encodeURIComponent(name)) +
        "?limit=5&q=" + encodeURIComponent(q);
      return fetch(url, options).then(function (r) { return r.ok ? r.json() : {}; });
    })).then(function (answers) {
      if (input.value.trim() === q) { fill(answers); }
    }).catch(function () { /* no suggestions: the search still works */ });
  }

  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(suggest, 150);
  });
})();
