// The live dashboard: big numbers and Chart.js charts, kept current by server-sent events
// (/admin/dashboard/events) without reloading; falls back to polling /admin/dashboard.json.
(function () {
  "use strict";

  var root = document.getElementById("dashboard");
  if (!root || !window.Chart) { return; }
  var labels = {
    success: root.dataset.labelSuccess, failure: root.dataset.labelFailure,
    unknown: root.dataset.labelUnknown, live: root.dataset.labelLive, offline: root.dataset.labelOffline
  };
  var colours = { success: "#198754", failure: "#dc3545" };

  function stackedBar(canvasId, horizontal) {
    return new Chart(document.getElementById(canvasId), {
      type: "bar",
      data: {
        labels: [],
        datasets: [
          { label: labels.success, data: [], backgroundColor: colours.success },
          { label: labels.failure, data: [], backgroundColor: colours.failure }
        ]
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: { duration: 300 },
        indexAxis: horizontal ? "y" : "x",
        scales: {
          x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }
        },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  var charts = {
    hours: stackedBar("chart-hours", false),
    clients: stackedBar("chart-clients", true),
    upstreams: stackedBar("chart-upstreams", true)
  };

  function fill(chart, rows, label) {
    chart.data.labels = rows.map(label);
    chart.data.datasets[0].data = rows.map(function (row) { return row.success; });
    chart.data.datasets[1].data = rows.map(function (row) { return row.failure; });
    chart.update();
  }

  function setText(id, text) {
    var element = document.getElementById(id);
    if (element && element.textContent !== text) { element.textContent = text; }
  }

  function show(figures) {
    setText("signins-24h", String(figures.signins_24h));
    setText("failures-24h", String(figures.failures_24h));
    setText("admin-failures-24h", String(figures.admin_failures_24h));
    setText("failure-rate", figures.failure_rate === null ? "–" : (figures.failure_rate * 100).toFixed(1) + "%");
    setText("active-sessions", String(figures.active_sessions));
    fill(charts.hours, figures.hours, function (row) { return row.label; });
    fill(charts.clients, figures.clients, function (row) {
      return row.client_id ? (row.name && row.name !== row.client_id ? row.name + " (" + row.client_id + ")" : row.client_id)
        : labels.unknown;
    });
    fill(charts.upstreams, figures.upstreams, function (row) { return row.upstream || labels.unknown; });
  }

  var status = document.getElementById("dashboard-status");
  function live(connected) {
    status.textContent = connected ? labels.live : labels.offline;
    status.classList.toggle("text-bg-success", connected);
    status.classList.toggle("text-bg-secondary", !connected);
  }

  show(JSON.parse(root.dataset.figures));

  var polling = null;
  function poll() {
    if (polling) { return; }
    polling = window.setInterval(function () {
      fetch(root.dataset.jsonUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.redirected || !response.ok) { window.location.reload(); return null; }
          return response.json();
        })
        .then(function (figures) { if (figures) { show(figures); live(true); } })
        .catch(function () { live(false); });
    }, 10000);
  }

  if (!window.EventSource) { poll(); return; }
  var source = new EventSource(root.dataset.eventsUrl);
  source.onopen = function () { live(true); };
  source.onmessage = function (event) { show(JSON.parse(event.data)); live(true); };
  source.addEventListener("signed-out", function () { source.close(); window.location.reload(); });
  source.onerror = function () {
    live(false);
    // CLOSED: the browser gave up (say the answer was a sign-in page); poll instead.
    if (source.readyState === EventSource.CLOSED) { poll(); }
  };
})();
