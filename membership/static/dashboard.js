// Staff dashboard charts. The numbers come as JSON from the data-charts attribute of
// #dashboard-data (no inline script, so the Content-Security-Policy stays script-src 'self'); each
// chart has a table of the same numbers in a <details> next to it for screen readers and for
// reading exact values.
(function () {
  "use strict";
  var source = document.getElementById("dashboard-data");
  if (!source || !source.dataset.charts || typeof window.Chart === "undefined") { return; }
  var data = JSON.parse(source.dataset.charts);
  // The legends in the page's language (the page puts its translated words in data-labels).
  var words = JSON.parse(source.dataset.labels || "{}");
  function word(key, english) { return words[key] || english; }
  var colors = {active: "#198754", grace: "#ffc107", former: "#6c757d", renewed: "#0d6efd",
                lapsed: "#dc3545", high: "#dc3545", medium: "#fd7e14", low: "#20c997", bands: "#0d6efd"};

  // A click on a bar or point opens the member list behind it: links[dataset][index].
  function opener(links) {
    return function (event, elements) {
      if (!links || !elements.length) { return; }
      var el = elements[0];
      var url = links[el.datasetIndex] && links[el.datasetIndex][el.index];
      if (url) { window.location.assign(url); }
    };
  }

  function draw(id, config, links) {
    var canvas = document.getElementById(id);
    if (!canvas) { return null; }
    config.options = config.options || {};
    if (links) {
      config.options.onClick = opener(links);
      config.options.onHover = function (event, elements) {
        event.native.target.style.cursor = elements.length ? "pointer" : "default";
      };
    }
    return new window.Chart(canvas, config);
  }
  var links = data.links || {};

  draw("chart-status", {
    type: "line",
    data: {labels: data.months, datasets: [
      {label: word("active", "Active"), data: data.status.active, borderColor: colors.active, backgroundColor: colors.active, fill: false, tension: 0.2},
      {label: word("grace", "In grace"), data: data.status.grace, borderColor: colors.grace, backgroundColor: colors.grace, fill: false, tension: 0.2},
      {label: word("former", "Lapsed or cancelled"), data: data.status.former, borderColor: colors.former, backgroundColor: colors.former, fill: false, tension: 0.2}
    ]},
    options: {interaction: {mode: "nearest", intersect: false}, scales: {y: {beginAtZero: true, ticks: {precision: 0}}}}
  }, links.status);

  draw("chart-renewals", {
    type: "bar",
    data: {labels: data.months, datasets: [
      {label: word("renewed", "Renewed"), data: data.renewed, backgroundColor: colors.renewed},
      {label: word("lapsed", "Lapsed"), data: data.lapsed, backgroundColor: colors.lapsed}
    ]},
    options: {interaction: {mode: "nearest", intersect: true}, scales: {y: {beginAtZero: true, ticks: {precision: 0}}}}
  }, links.renewals);

  draw("chart-engagement", {
    type: "bar",
    data: {labels: data.engagement.labels, datasets: [
      {label: word("members", "Members"), data: data.engagement.counts, backgroundColor: colors.bands}
    ]},
    options: {plugins: {legend: {display: false}}, scales: {y: {beginAtZero: true, ticks: {precision: 0}}}}
  }, links.engagement);

  draw("chart-risk", {
    type: "bar",
    data: {labels: data.risk.plans, datasets: [
      {label: word("high", "High"), data: data.risk.high, backgroundColor: colors.high},
      {label: word("medium", "Medium"), data: data.risk.medium, backgroundColor: colors.medium},
      {label: word("low", "Low"), data: data.risk.low, backgroundColor: colors.low}
    ]},
    options: {indexAxis: "y", scales: {x: {stacked: true, beginAtZero: true, ticks: {precision: 0}}, y: {stacked: true}}}
  }, links.risk);
})();
