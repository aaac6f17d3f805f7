// The classroom dashboard: tiles and charts from Prometheus' HTTP API (through the dashboard server, same origin).
// The panels and their PromQL come from config.json, which the monitoring role renders from the same list as the
// Grafana dashboard. No network beyond this server; uPlot is shipped beside this file.
"use strict";

(function () {
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
  const HEIGHT = 220;
  const charts = new Map();
  let refreshes = 0;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function getJSON(url) {
    const resp = await fetch(url, { cache: "no-store", credentials: "same-origin" });
    let body;
    try {
      body = await resp.json();
    } catch (err) {
      throw new Error(url.split("?")[0] + " answered HTTP " + resp.status + " without JSON");
    }
    if (!resp.ok && !(body && body.status === "error")) throw new Error(url.split("?")[0] + " answered HTTP " + resp.status);
    return body;
  }

  async function api(kind, params) {
    const body = await getJSON("api/v1/" + kind + "?" + new URLSearchParams(params).toString());
    if (body.status !== "success") throw new Error(body.error || "Prometheus refused the query");
    return body.data.result;
  }

  function legend(template, metric) {
    return template.replace(/\{(\w+)\}/g, (_, name) => (metric[name] !== undefined ? metric[name] : ""));
  }

  function fmt(value) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "–";
    const abs = Math.abs(value);
    if (abs >= 100) return value.toFixed(0);
    if (abs >= 10) return value.toFixed(1);
    return value.toFixed(2);
  }

  function ago(seconds) {
    const s = Math.max(0, Date.now() / 1000 - seconds);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 172800) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " days ago";
  }

  // ---- tiles ----------------------------------------------------------------------------------------------------

  function buildTile(tile) {
    const box = el("div", "tile");
    box.id = "tile-" + tile.id;
    box.append(el("h2", "", tile.title), el("div", "value", "…"), el("div", "detail", ""));
    return box;
  }

  function setTile(box, value, detail, cls) {
    box.className = "tile" + (cls ? " " + cls : "");
    box.querySelector(".value").textContent = value;
    box.querySelector(".detail").textContent = detail;
    box.dataset.value = value;
  }

  async function refreshTile(tile, box) {
    if (tile.kind === "verdict") {
      const sel = '{check="' + tile.check + '"}';
      const [status, stamp] = await Promise.all([
        api("query", { query: "classroom_check_status" + sel + " == 1" }),
        api("query", { query: "classroom_check_timestamp_seconds" + sel }),
      ]);
      if (status.length === 0) {
        setTile(box, "none yet", "no verdict found", "");
        return;
      }
      const word = status[0].metric.status || "?";
      const when = stamp.length ? ago(parseFloat(stamp[0].value[1])) : "";
      setTile(box, word.toUpperCase(), when, { pass: "pass", fail: "fail", inconclusive: "warn" }[word] || "warn");
      return;
    }
    const result = await api("query", { query: tile.expr });
    if (result.length === 0) {
      setTile(box, "–", tile.kind === "up" ? "not scraped" : "no data", "");
      return;
    }
    const value = parseFloat(result[0].value[1]);
    if (tile.kind === "up") {
      setTile(box, value === 1 ? "up" : "down", result[0].metric.instance || "", value === 1 ? "pass" : "fail");
    } else {
      setTile(box, fmt(value).replace(/\.0+$/, ""), "", tile.id === "alerts" && value > 0 ? "warn" : "");
    }
  }

  // ---- charts ---------------------------------------------------------------------------------------------------

  function buildPanel(panel) {
    const box = el("article", "panel");
    box.id = "panel-" + panel.id;
    box.dataset.state = "loading";
    box.dataset.points = "0";
    box.append(el("h2", "", panel.title + " (" + panel.unit + ")"), el("div", "chart"), el("p", "note", ""));
    return box;
  }

  // uPlot wants one x array and one y array per series, aligned; Prometheus gives each series its own samples.
  function align(results, panel) {
    const series = [];
    const xs = new Set();
    results.forEach((result, i) => {
      for (const r of result) {
        const values = new Map();
        for (const [t, v] of r.values) {
          const n = parseFloat(v);
          if (Number.isFinite(n)) {
            values.set(t, n);
            xs.add(t);
          }
        }
        series.push({ label: legend(panel.queries[i].legend, r.metric), values });
      }
    });
    const x = Array.from(xs).sort((a, b) => a - b);
    const data = [x, ...series.map((s) => x.map((t) => (s.values.has(t) ? s.values.get(t) : null)))];
    const points = series.reduce((sum, s) => sum + s.values.size, 0);
    return { labels: series.map((s) => s.label), data, points };
  }

  function chartOptions(panel, labels, width) {
    return {
      width: width,
      height: HEIGHT,
      series: [{}].concat(labels.map((label, i) => ({
        label: label,
        stroke: COLORS[i % COLORS.length],
        width: 2,
        points: { size: 4 },
        value: (u, v) => (v === null ? "–" : fmt(v) + " " + panel.unit),
      }))),
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [{}, { size: 56, values: (u, ticks) => ticks.map(fmt) }],
      cursor: { drag: { x: false, y: false } },
    };
  }

  function draw(panel, box, aligned) {
    const holder = box.querySelector(".chart");
    const width = Math.max(200, holder.clientWidth || 400);
    const key = aligned.labels.join("\u0000");
    const current = charts.get(panel.id);
    if (current && current.key === key) {
      current.plot.setData(aligned.data);
      return;
    }
    if (current) current.plot.destroy();
    holder.textContent = "";
    // eslint-disable-next-line no-undef
    const plot = new uPlot(chartOptions(panel, aligned.labels, width), aligned.data, holder);
    charts.set(panel.id, { key: key, plot: plot });
  }

  async function whyNoGpu() {
    const info = await api("query", { query: "classroom_gpu_exporter_info" });
    if (info.length === 0) return "The GPU exporter is not scraped (is classroom-gpu-exporter.service running?).";
    const m = info[0].metric;
    if (m.reason === "ok") return "No GPU sample in this window yet.";
    return "No GPU seen (" + m.reason + "): " + m.detail + ".";
  }

  async function refreshPanel(panel, box, range) {
    const results = await Promise.all(panel.queries.map((q) => api("query_range", {
      query: q.expr, start: range.start, end: range.end, step: range.step,
    })));
    const aligned = align(results, panel);
    draw(panel, box, aligned);
    box.dataset.points = String(aligned.points);
    const note = box.querySelector(".note");
    if (aligned.points > 0) {
      box.dataset.state = "data";
      note.textContent = "";
    } else if (panel.gpu) {
      box.dataset.state = "no-gpu";
      note.textContent = await whyNoGpu();
    } else {
      box.dataset.state = "empty";
      note.textContent = "No samples in the last " + range.minutes + " min (no traffic yet, or the target is down).";
    }
  }

  // ---- the loop -------------------------------------------------------------------------------------------------

  async function refresh(cfg, nodes) {
    const end = Math.floor(Date.now() / 1000);
    const span = cfg.range_minutes * 60;
    const range = {
      start: end - span, end: end, minutes: cfg.range_minutes,
      step: Math.max(cfg.scrape_interval_seconds, Math.ceil(span / 300)),
    };
    const jobs = [
      ...cfg.tiles.map((t) => refreshTile(t, nodes.tiles.get(t.id)).catch((err) => {
        setTile(nodes.tiles.get(t.id), "?", err.message, "warn");
        throw err;
      })),
      ...cfg.panels.map((p) => refreshPanel(p, nodes.panels.get(p.id), range).catch((err) => {
        const box = nodes.panels.get(p.id);
        box.dataset.state = "error";
        box.querySelector(".note").textContent = err.message;
        throw err;
      })),
    ];
    const outcomes = await Promise.allSettled(jobs);
    const failed = outcomes.filter((o) => o.status === "rejected");
    const status = document.getElementById("status");
    const clock = new Date().toLocaleTimeString();
    if (failed.length) {
      status.className = "status error";
      status.textContent = failed.length + " of " + jobs.length + " queries failed at " + clock + ": " + failed[0].reason.message;
    } else {
      status.className = "status";
      status.textContent = "vLLM " + cfg.vllm_version + " · last " + cfg.range_minutes + " min · updated " + clock;
    }
    refreshes += 1;
    document.body.dataset.refreshes = String(refreshes);
  }

  async function main() {
    let cfg;
    try {
      cfg = await getJSON("config.json");
    } catch (err) {
      const status = document.getElementById("status");
      status.className = "status error";
      status.textContent = "The dashboard's settings could not be read: " + err.message;
      return;
    }
    const nodes = { tiles: new Map(), panels: new Map() };
    const tiles = document.getElementById("tiles");
    for (const t of cfg.tiles) {
      const box = buildTile(t);
      nodes.tiles.set(t.id, box);
      tiles.append(box);
    }
    const panels = document.getElementById("panels");
    for (const p of cfg.panels) {
      const box = buildPanel(p);
      nodes.panels.set(p.id, box);
      panels.append(box);
    }
    window.addEventListener("resize", () => {
      for (const [id, chart] of charts) {
        const holder = nodes.panels.get(id).querySelector(".chart");
        chart.plot.setSize({ width: Math.max(200, holder.clientWidth), height: HEIGHT });
      }
    });
    const loop = async () => {
      await refresh(cfg, nodes);
      window.setTimeout(loop, cfg.refresh_seconds * 1000);
    };
    loop();
  }

  document.addEventListener("DOMContentLoaded", main);
})();
