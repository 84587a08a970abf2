// The operations page's charts (uPlot, vendored). The numbers come from the page's JSON
// (#ops-data), written by the server; times are epoch seconds shown in UTC.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("ops-data").textContent);
  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
  var utc = function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); };

  function count(v) {
    if (v == null) return "—";
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toPrecision(3) + " G";
    if (a >= 1e6) return (v / 1e6).toPrecision(3) + " M";
    if (a >= 1e4) return (v / 1e3).toPrecision(3) + " k";
    return Number.isInteger(v) ? v.toLocaleString("en") : v.toFixed(a < 10 ? 2 : 1);
  }
  function seconds(v) {
    if (v == null) return "—";
    if (v < 1) return Math.round(v * 1000) + " ms";
    if (v < 60) return v.toFixed(v < 10 ? 2 : 0) + " s";
    if (v < 3600) return Math.floor(v / 60) + " min " + Math.round(v % 60) + " s";
    return Math.floor(v / 3600) + " h " + Math.round((v % 3600) / 60) + " min";
  }

  function draw(id, series, xs, ys, yFormat, yLabel) {
    var el = document.getElementById(id);
    if (!el || !xs.length) {
      if (el) el.innerHTML = "<p class='empty'>nothing to draw in this window</p>";
      return;
    }
    var opts = {
      width: el.clientWidth || 600, height: 240, tzDate: utc,
      scales: { x: { time: true, range: function () { return data.range; } } },
      series: [{ label: "time (UTC)", value: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss} UTC" }].concat(series.map(function (s, i) {
        return { label: s, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
                 value: function (u, v) { return yFormat(v); } };
      })),
      axes: [{ label: "UTC", values: [[3600 * 24, "{MM}-{DD}", null, null, null, null, null, null, 1],
                                      [60, "{HH}:{mm}", "\n{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
                                      [1, "{HH}:{mm}:{ss}", "\n{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1]] },
             { label: yLabel, size: 64, values: function (u, vals) { return vals.map(yFormat); } }],
    };
    var plot = new uPlot(opts, [xs].concat(ys), el);
    el.dataset.drawn = String(series.length);
    window.addEventListener("resize", function () { plot.setSize({ width: el.clientWidth, height: 240 }); });
  }

  if (data.lag) {
    var parts = Object.keys(data.lag.series).sort(function (a, b) { return a - b; });
    draw("chart-lag", parts.map(function (p) { return "partition " + p; }), data.lag.x,
         parts.map(function (p) { return data.lag.series[p]; }), count, "messages");
  }
  if (data.ingest) {
    draw("chart-ingest", ["into Kafka", "stored (by receipt)"], data.ingest.x, [data.ingest.kafka, data.ingest.stored],
         function (v) { return v == null ? "—" : count(v) + "/s"; }, "per second");
  }
  if (data.freshness) {
    draw("chart-freshness", ["p50", "p99"], data.freshness.x, [data.freshness.p50, data.freshness.p99], seconds, "202 → queryable");
  }
  document.body.dataset.ready = "true";
})();
