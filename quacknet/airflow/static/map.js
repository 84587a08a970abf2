// The coverage map: H3 cells (resolution 8) from the plugin's /api/coverage (quacknet.coverage),
// coloured by median RSRP or download speed, on Natural Earth country outlines (world-atlas via
// topojson-client). Leaflet draws on a canvas; no tile server is used. Every text from the server
// goes into the page as text (textContent), never as HTML.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("map-config").textContent);
  var params = new URLSearchParams(location.search);
  var $ = function (id) { return document.getElementById(id); };
  var statusEl = $("status");

  var SCALES = {
    rsrp: {
      title: "Median RSRP", unit: "dBm", key: "median_rsrp_dbm",
      steps: [[-80, "#1a9850", "≥ −80 dBm excellent"], [-90, "#91cf60", "−90 … −80 good"], [-100, "#fee08b", "−100 … −90 fair"],
              [-110, "#fc8d59", "−110 … −100 poor"], [-Infinity, "#d73027", "< −110 dBm very poor"]],
      show: function (v) { return v.toFixed(0) + " dBm"; },
    },
    download: {
      title: "Median download", unit: "Mbit/s", key: "median_download_kbps",
      steps: [[50000, "#1a9850", "≥ 50 Mbit/s"], [20000, "#91cf60", "20 … 50 Mbit/s"], [5000, "#fee08b", "5 … 20 Mbit/s"],
              [1000, "#fc8d59", "1 … 5 Mbit/s"], [-Infinity, "#d73027", "< 1 Mbit/s"]],
      show: function (v) { return (v / 1000).toFixed(v < 10000 ? 2 : 1) + " Mbit/s"; },
    },
  };
  var NO_VALUE = "#b8c0c8";

  // -- filters, kept in the URL so a view can be shared ---------------------------------------------
  var metric = $("metric"), technology = $("technology"), preset = $("preset"), since = $("since"), until = $("until");
  if (params.get("metric") in SCALES) metric.value = params.get("metric");
  if (params.get("technology") !== null) technology.value = params.get("technology");
  if (params.get("since")) { preset.value = "custom"; since.value = params.get("since"); until.value = params.get("until") || ""; }
  else if (params.get("hours")) preset.value = params.get("hours");
  var syncCustom = function () { $("filters").classList.toggle("custom", preset.value === "custom"); };
  syncCustom();

  function windowParams() {
    if (preset.value === "custom") return { since: since.value.trim(), until: until.value.trim() };
    var hours = Number(preset.value);
    return { since: new Date(Date.now() - hours * 3600e3).toISOString().replace(/\.\d{3}Z$/, "Z"), until: "" };
  }

  // -- the map ---------------------------------------------------------------------------------------
  var map = L.map("map", { preferCanvas: true, worldCopyJump: true, minZoom: 2, maxZoom: 17, zoomSnap: 0.5 });
  map.createPane("outlines").style.zIndex = 350;  // below the cells' overlay pane
  var canvas = L.canvas({ padding: 0.3, tolerance: 2 });
  var outlines = L.canvas({ padding: 0.3, pane: "outlines" });
  map.attributionControl.addAttribution("Outlines: Natural Earth (public domain) via world-atlas");
  fetch(config.countries).then(function (r) { return r.json(); }).then(function (topo) {
    L.geoJSON(topojson.feature(topo, topo.objects.countries), {
      renderer: outlines, interactive: false, pane: "outlines",
      style: { color: "#8795a5", weight: 0.7, fillColor: "#f7f5ef", fillOpacity: 1 },
    }).addTo(map);
  });
  var cells = L.geoJSON(null, { renderer: canvas }).addTo(map);
  var features = {};

  function valueOf(feature) {
    var key = SCALES[metric.value].key, techs = feature.properties.technologies, best = null;
    Object.keys(techs).forEach(function (t) {
      if (technology.value && t !== technology.value) return;
      var v = techs[t][key];
      if (v != null && (best === null || v > best)) best = v;
    });
    return best;
  }
  function colour(v) {
    if (v === null) return NO_VALUE;
    var steps = SCALES[metric.value].steps;
    for (var i = 0; i < steps.length; i++) if (v >= steps[i][0]) return steps[i][1];
    return NO_VALUE;
  }
  function plural(n, word) { return n.toLocaleString("en") + " " + word + (n === 1 ? "" : "s"); }
  function shown(iso) { return iso.replace("T", " ").replace(/(\.\d+)?Z$/, ""); }
  function el(tag, text, cls) { var n = document.createElement(tag); if (text != null) n.textContent = text; if (cls) n.className = cls; return n; }

  function cellInfo(feature) {
    var p = feature.properties, box = el("div", null, "cellinfo");
    box.appendChild(el("div", "H3 cell " + p.h3, "h3"));
    box.appendChild(el("div", plural(p.scans, "scan") + " (resolution " + p.resolution + ")"));
    var table = el("table"), head = el("tr");
    ["technology", "scans", "median RSRP", "median download"].forEach(function (h) { head.appendChild(el("th", h)); });
    table.appendChild(head);
    Object.keys(p.technologies).sort().forEach(function (t) {
      var f = p.technologies[t], row = el("tr");
      row.dataset.technology = t;
      row.appendChild(el("td", t));
      row.appendChild(el("td", f.scans.toLocaleString("en")));
      row.appendChild(el("td", f.median_rsrp_dbm == null ? "—" : SCALES.rsrp.show(f.median_rsrp_dbm)));
      row.appendChild(el("td", f.median_download_kbps == null ? "—" : SCALES.download.show(f.median_download_kbps)));
      table.appendChild(row);
    });
    box.appendChild(table);
    return box;
  }

  function legend() {
    var s = SCALES[metric.value], box = $("legend");
    box.textContent = "";
    box.appendChild(el("h4", s.title + (technology.value ? " · " + technology.value : " · best technology per cell")));
    s.steps.concat([[null, NO_VALUE, "no measurement"]]).forEach(function (step) {
      var row = el("div"), swatch = el("i");
      swatch.style.background = step[1];
      row.appendChild(swatch);
      row.appendChild(document.createTextNode(step[2]));
      box.appendChild(row);
    });
  }

  function status(text, state) {
    statusEl.textContent = text;
    statusEl.className = "status" + (state === "error" ? " error" : "");
    document.body.dataset.state = state;
  }

  function restyle() {
    cells.setStyle(function (f) {
      return { color: "#37414d", weight: 0.6, opacity: 0.7, fillColor: colour(valueOf(f)), fillOpacity: 0.75 };
    });
    legend();
  }

  var pending = null;
  function load() {
    var b = map.getBounds(), w = windowParams();
    var box = [Math.max(-180, b.getWest()), Math.max(-90, b.getSouth()), Math.min(180, b.getEast()), Math.min(90, b.getNorth())];
    var area = (box[2] - box[0]) * (box[3] - box[1]);
    var c = map.getCenter(), q = new URLSearchParams();
    q.set("lat", c.lat.toFixed(5)); q.set("lon", c.lng.toFixed(5)); q.set("zoom", String(map.getZoom()));
    q.set("metric", metric.value);
    if (technology.value) q.set("technology", technology.value);
    if (preset.value === "custom") { q.set("since", w.since); if (w.until) q.set("until", w.until); } else q.set("hours", preset.value);
    history.replaceState(null, "", "?" + q.toString());
    legend();
    if (area > config.max_area_deg2) {
      cells.clearLayers(); features = {};
      document.body.dataset.cells = "0";
      status("Zoom in to see cells: this view covers " + area.toFixed(1) + " square degrees, at most " + config.max_area_deg2 + " are served.", "zoom");
      return;
    }
    if (pending) pending.abort();
    pending = new AbortController();
    var api = new URLSearchParams({ bbox: box.map(function (v) { return v.toFixed(6); }).join(","), since: w.since });
    if (w.until) api.set("until", w.until);
    if (technology.value) api.set("technology", technology.value);
    status("loading…", "loading");
    fetch(config.api + "?" + api.toString(), { signal: pending.signal, credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (!res.ok) { status(String(res.body.detail || "the coverage request failed"), "error"); return; }
        cells.clearLayers(); features = {};
        var fc = res.body, scans = 0;
        cells.addData(fc);
        cells.eachLayer(function (layer) {
          var f = layer.feature;
          features[f.properties.h3] = layer;
          scans += f.properties.scans;
          layer.on("click", function (ev) { L.popup({ maxWidth: 420 }).setLatLng(ev.latlng).setContent(cellInfo(f)).openOn(map); });
        });
        restyle();
        document.body.dataset.cells = String(fc.features.length);
        status(plural(fc.features.length, "cell") + " · " + plural(scans, "scan") + " · " +
               shown(fc.window.since) + " → " + shown(fc.window.until) + " UTC", "loaded");
      })
      .catch(function (err) { if (err.name !== "AbortError") status("the coverage request failed: " + err, "error"); });
  }

  map.on("moveend", load);
  [metric, technology].forEach(function (s) { s.addEventListener("change", function () { if (s === metric) { restyle(); load(); } else load(); }); });
  preset.addEventListener("change", function () { syncCustom(); if (preset.value !== "custom") load(); });
  $("apply").addEventListener("click", load);

  window.quacknet = { map: map, cells: cells, features: function () { return features; } };

  if (params.get("lat") && params.get("lon")) {
    map.setView([Number(params.get("lat")), Number(params.get("lon"))], Number(params.get("zoom") || 12));
  } else {
    fetch(config.newest, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (n) {
      if (n.lat != null) map.setView([n.lat, n.lon], 11); else map.setView([51.2, 10.4], 6);
    }).catch(function () { map.setView([51.2, 10.4], 6); });
  }
})();
