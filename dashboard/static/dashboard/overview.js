/* The admin overview: charts from the figures the page embeds (#overview-data), and the pool's
 * state kept live over the websocket at /admin/live/ (dashboard/consumers.py).
 * Chart.js is served from this project's static files (vendor/chartjs): no CDN. */
(function () {
  "use strict";

  var PALETTE = ["#417690", "#e07b39", "#5b9a68", "#b5475c", "#8a6fb0", "#c9a227", "#7a7a7a"];
  var ERROR_COLOR = "#ba2121";
  var WORKER_TIMEOUT_MS = 15000;
  var MAX_RETRY_MS = 30000;

  var overview = (window.overview = { charts: {}, pool: null, workers: {}, messages: 0 });

  // Charts -----------------------------------------------------------------------------

  function color(i, label) {
    if (label === "errors") return ERROR_COLOR;
    return PALETTE[i % PALETTE.length];
  }

  function dataset(entry, i, extra) {
    var c = color(i, entry.label);
    return Object.assign(
      { label: entry.label, data: entry.data, backgroundColor: c, borderColor: c, borderWidth: 1 },
      extra || {}
    );
  }

  function stackedBar(canvas, labels, datasets, options) {
    return new window.Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: datasets },
      options: Object.assign(
        {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          interaction: { mode: "index", intersect: false },
          scales: {
            x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 12 } },
            y: { stacked: true, beginAtZero: true },
          },
          plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        },
        options || {}
      ),
    });
  }

  function buildCharts(d) {
    var Chart = window.Chart;
    if (!Chart) return;
    Chart.defaults.font.size = 11;
    var style = getComputedStyle(document.body);
    // The admin's own colours, so that its dark theme gets readable axes and grid lines.
    var fg = style.getPropertyValue("--body-quiet-color").trim();
    if (fg) Chart.defaults.color = fg;
    var grid = style.getPropertyValue("--hairline-color").trim();
    if (grid) Chart.defaults.borderColor = grid;
    var s = d.series;

    var requests = s.requests.map(function (e, i) {
      return dataset(e, i, { stack: "requests" });
    });
    if (d.split) {
      // Split by key, credential or model: errors (all groups) as a line over the bars.
      requests.push({
        type: "line",
        label: "errors",
        data: s.errors,
        borderColor: ERROR_COLOR,
        backgroundColor: ERROR_COLOR,
        pointRadius: 0,
        borderWidth: 2,
        stack: "errors",
      });
    }
    overview.charts.requests = stackedBar(
      document.getElementById("chart-requests"),
      d.labels,
      requests
    );
    overview.charts.tokens = stackedBar(
      document.getElementById("chart-tokens"),
      d.labels,
      s.tokens.map(function (e, i) {
        return dataset(e, i);
      })
    );
    overview.charts.cost = stackedBar(
      document.getElementById("chart-cost"),
      d.labels,
      s.cost.map(function (e, i) {
        return dataset(e, i);
      }),
      {
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12 } },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                return ctx.dataset.label + ": $" + Number(ctx.parsed.y).toFixed(6);
              },
            },
          },
        },
      }
    );
    overview.charts.latency = new Chart(document.getElementById("chart-latency"), {
      type: "line",
      data: {
        labels: d.labels,
        datasets: [
          { label: "p50", data: s.latency.p50, borderColor: PALETTE[0], backgroundColor: PALETTE[0] },
          { label: "p95", data: s.latency.p95, borderColor: PALETTE[1], backgroundColor: PALETTE[1] },
        ].map(function (ds) {
          return Object.assign(ds, { spanGaps: true, pointRadius: 2, borderWidth: 2 });
        }),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 12 } },
          y: { beginAtZero: true, title: { display: true, text: "ms" } },
        },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      },
    });
  }

  // The pool, live ------------------------------------------------------------------------

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function utc(epoch) {
    var d = new Date(epoch * 1000);
    var now = new Date();
    var time = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
    if (d.toISOString().slice(0, 10) === now.toISOString().slice(0, 10)) return time + " UTC";
    return d.toISOString().slice(0, 10) + " " + time + " UTC";
  }

  function left(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + pad(seconds % 60) + " s";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + pad(Math.floor((seconds % 3600) / 60)) + " min";
    return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // What a credential's state reads as now: blocks whose time has passed no longer block (the
  // same rule as the proxy's), so a countdown ends in "ok" without asking the server.
  function stateLines(row, nowSeconds) {
    if (row.state === "disabled") return { state: "disabled", lines: ["disabled"] };
    if (row.state === "needs_login") return { state: "needs_login", lines: [row.login] };
    var lines = [];
    var worst = "ok";
    (row.blocks || []).forEach(function (b) {
      if (b.until === null || b.until <= nowSeconds) return;
      var scope = b.model ? b.model + ": " : "";
      if (b.status === "attention") {
        worst = "attention";
        lines.push(scope + "needs attention: " + b.reason + " (until " + utc(b.until) + ")");
      } else {
        if (worst === "ok") worst = "cooling";
        lines.push(
          scope + "cooling until " + utc(b.until) + " (" + b.reason + "), " + left(b.until - nowSeconds) + " left"
        );
      }
    });
    return { state: worst, lines: lines.length ? lines : ["ok"] };
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  // Rows are rebuilt only when the credentials themselves change; otherwise their cells are
  // updated in place, so the once-a-second countdown never swallows a click on a link.
  function renderPool(section) {
    var pool = overview.pool;
    if (!pool) return;
    var tbody = section.querySelector("#pool-table tbody");
    var ids = pool.credentials
      .map(function (row) {
        return row.id;
      })
      .join(",");
    if (tbody.dataset.ids !== ids || !tbody.children.length) {
      var base = section.dataset.credentialUrl;
      var fresh = document.createDocumentFragment();
      pool.credentials.forEach(function (row) {
        var tr = el("tr", { "data-credential": row.id });
        var name = el("th", { scope: "row" });
        name.appendChild(el("a", { href: base + row.id + "/change/" }));
        tr.appendChild(name);
        tr.appendChild(el("td", { class: "ov-provider" }));
        tr.appendChild(el("td", { class: "ov-state" }));
        tr.appendChild(el("td", { class: "ov-num ov-ok-count" }));
        tr.appendChild(el("td", { class: "ov-num ov-failed-count" }));
        fresh.appendChild(tr);
      });
      if (!pool.credentials.length) {
        var empty = el("tr");
        empty.appendChild(el("td", { colspan: "5", class: "quiet" }, "No credentials yet."));
        fresh.appendChild(empty);
      }
      tbody.replaceChildren(fresh);
      tbody.dataset.ids = ids;
    }
    var nowSeconds = Date.now() / 1000;
    var counts = {};
    pool.credentials.forEach(function (row, i) {
      var shown = stateLines(row, nowSeconds);
      counts[shown.state] = (counts[shown.state] || 0) + 1;
      var tr = tbody.children[i];
      var stateClass = "ov-state-" + shown.state;
      if (tr.className !== stateClass) tr.className = stateClass;
      tr.dataset.state = shown.state;
      setText(tr.querySelector("a"), row.label);
      setText(tr.querySelector(".ov-provider"), row.provider);
      setText(tr.querySelector(".ov-state"), shown.lines.join("\n"));
      setText(tr.querySelector(".ov-ok-count"), row.successes.toLocaleString("en-US"));
      var failed = tr.querySelector(".ov-failed-count");
      setText(failed, row.failures.toLocaleString("en-US"));
      failed.classList.toggle("ov-bad", row.failures > 0);
    });
    var words = [
      ["ok", "ok"],
      ["cooling", "cooling"],
      ["attention", "need attention"],
      ["needs_login", "need a login"],
      ["disabled", "disabled"],
    ]
      .filter(function (w) {
        return counts[w[0]];
      })
      .map(function (w) {
        return counts[w[0]] + " " + w[1];
      });
    var n = pool.credentials.length;
    setText(
      section.querySelector("#pool-summary"),
      n + " credential" + (n === 1 ? "" : "s") + (words.length ? ": " + words.join(" · ") : "") + "."
    );
  }

  function renderWorkers(section) {
    var now = Date.now();
    var total = 0;
    var parts = [];
    Object.keys(overview.workers)
      .sort()
      .forEach(function (id) {
        var w = overview.workers[id];
        if (now - w.received > WORKER_TIMEOUT_MS) {
          delete overview.workers[id];
          return;
        }
        total += w.in_flight;
        parts.push(id + ": " + w.in_flight + (w.draining ? " (draining)" : ""));
      });
    setText(section.querySelector("#in-flight-total"), parts.length ? String(total) : "–");
    setText(
      section.querySelector("#in-flight-workers"),
      parts.length
        ? "(" + parts.length + " worker" + (parts.length === 1 ? "" : "s") + ": " + parts.join(", ") + ")"
        : ""
    );
  }

  function setStatus(section, state, text) {
    var status = section.querySelector("#live-status");
    status.dataset.state = state;
    status.textContent = text;
  }

  function startLive(section) {
    overview.pool = JSON.parse(document.getElementById("pool-data").textContent);
    renderPool(section);
    var url = new URL(section.dataset.liveUrl, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    var retry = 1000;

    function connect() {
      var socket = new WebSocket(url.href);
      overview.socket = socket;
      socket.onopen = function () {
        retry = 1000;
        setStatus(section, "live", "live");
      };
      socket.onmessage = function (event) {
        var message = JSON.parse(event.data);
        overview.messages += 1;
        if (message.type === "pool") {
          overview.pool = message;
          renderPool(section);
        } else if (message.type === "worker") {
          message.received = Date.now();
          overview.workers[message.worker] = message;
          renderWorkers(section);
        }
      };
      socket.onclose = function () {
        setStatus(section, "down", "reconnecting…");
        window.setTimeout(connect, retry);
        retry = Math.min(retry * 2, MAX_RETRY_MS);
      };
    }

    connect();
    // Countdowns, ended cooldowns and silent workers: redrawn from what the page has, no request.
    window.setInterval(function () {
      renderPool(section);
      renderWorkers(section);
    }, 1000);
  }

  var data = document.getElementById("overview-data");
  if (data) buildCharts(JSON.parse(data.textContent));
  var pool = document.getElementById("pool");
  if (pool) startLive(pool);
})();
