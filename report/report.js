// The script of pipe's run report. It reads the run's data from the JSON element #report-data
// and draws every element of class "chart" that has a data-draw attribute, from the part of
// the data its data-src names (a dotted path: "stages.2.training.curves.0"): line, bar and
// point charts with uPlot, heatmaps on a canvas. The other charts (the DAG, the confusion
// matrix, the tables with bars) are drawn in Go. When every chart is drawn it sets
// document.body.dataset.ready = "1"; a chart that cannot be drawn says so in its place and on
// the console.
(function () {
  "use strict";

  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
  const HEIGHT = 240;
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const redraws = [];

  // resolve follows a dotted path into the report's data.
  function resolve(path) {
    let v = data;
    for (const k of String(path || "").split(".")) {
      if (v === null || v === undefined) return undefined;
      v = v[k];
    }
    return v;
  }

  function widthOf(el) {
    return Math.max(260, Math.floor(el.clientWidth - 16));
  }

  // fmt shows a number with 4 significant digits, tiny and huge ones in exponent form.
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2).replace(/\.?0+e/, "e");
    return String(+v.toPrecision(4));
  }

  function isNum(v) {
    return typeof v === "number" && isFinite(v);
  }

  // aligned returns uPlot's data for columns over x: x ascending (uPlot needs it), points whose
  // x is missing left out, a missing value as null, and for a log scale values <= 0 as null.
  function aligned(x, columns, logX, logYs) {
    const idx = [];
    for (let i = 0; i < x.length; i++) {
      if (isNum(x[i]) && !(logX && x[i] <= 0)) idx.push(i);
    }
    idx.sort((a, b) => x[a] - x[b] || a - b);
    const out = [idx.map((i) => x[i])];
    columns.forEach((col, c) => {
      out.push(idx.map((i) => {
        const v = col && i < col.length ? col[i] : null;
        if (!isNum(v) || (logYs && logYs[c] && v <= 0)) return null;
        return v;
      }));
    });
    return out;
  }

  // sparse returns the number of values of a series when its line alone would hide some:
  // at most 12 values, or a value with no neighbour; else 0.
  function sparse(values) {
    const v = values || [];
    let n = 0, isolated = false;
    for (let i = 0; i < v.length; i++) {
      if (!isNum(v[i])) continue;
      n++;
      if (!isNum(v[i - 1]) && !isNum(v[i + 1])) isolated = true;
    }
    return n <= 12 || isolated ? Math.max(n, 1) : 0;
  }

  function logTicks(u, splits) {
    return splits.map((v) => (Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9 ? fmt(v) : ""));
  }

  function linearTicks(u, splits) {
    return splits.map(fmt);
  }

  // overlays draws the horizontal bands (under the series) and the vertical marks (over them).
  function overlays(marks, bands) {
    const px = uPlot.pxRatio || 1;
    return {
      hooks: {
        drawAxes: [function (u) {
          if (!bands || !bands.length) return;
          const ctx = u.ctx;
          const { left, top, width, height } = u.bbox;
          ctx.save();
          bands.forEach((b) => {
            const sc = u.scales.y;
            const lo = Math.max(b.lo, sc.min), hi = Math.min(b.hi, sc.max);
            if (!(hi > lo)) return;
            const y0 = Math.max(top, Math.min(top + height, u.valToPos(hi, "y", true)));
            const y1 = Math.max(top, Math.min(top + height, u.valToPos(lo, "y", true)));
            ctx.fillStyle = "rgba(46,125,50,0.14)";
            ctx.fillRect(left, y0, width, Math.max(1, y1 - y0));
            if (b.label) {
              ctx.fillStyle = "#2e7d32";
              ctx.font = 11 * px + "px system-ui, sans-serif";
              ctx.textBaseline = "top";
              ctx.textAlign = "left";
              ctx.fillText(b.label, left + 4 * px, y0 + 2 * px);
            }
          });
          ctx.restore();
        }],
        draw: [function (u) {
          if (!marks || !marks.length) return;
          const ctx = u.ctx;
          const { top, height } = u.bbox;
          ctx.save();
          marks.forEach((m, i) => {
            if (!isNum(m.x)) return;
            const x = Math.round(u.valToPos(m.x, "x", true));
            if (x < u.bbox.left - 2 * px || x > u.bbox.left + u.bbox.width + 2 * px) return;
            ctx.strokeStyle = i % 2 ? "#6a1b9a" : "#37474f";
            ctx.setLineDash([5 * px, 4 * px]);
            ctx.lineWidth = 1.5 * px;
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            if (m.label) {
              ctx.fillStyle = ctx.strokeStyle;
              ctx.font = 11 * px + "px system-ui, sans-serif";
              ctx.textBaseline = "top";
              ctx.textAlign = "left";
              const w = ctx.measureText(m.label).width;
              const tx = x + 4 * px + w > u.bbox.left + u.bbox.width ? x - 4 * px - w : x + 4 * px;
              ctx.fillText(m.label, tx, top + 4 * px + i * 14 * px);
            }
          });
          ctx.restore();
        }],
      },
    };
  }

  // rangeWith widens a scale's automatic range to take in extra values (a band).
  function rangeWith(extra, log) {
    return function (u, min, max) {
      extra.forEach((v) => {
        if (isNum(v) && !(log && v <= 0)) {
          min = min === null ? v : Math.min(min, v);
          max = max === null ? v : Math.max(max, v);
        }
      });
      if (min === null || max === null) return log ? [1e-6, 1] : [0, 1];
      return log ? uPlot.rangeLog(min, max, 10, true) : uPlot.rangeNum(min, max, 0.1, true);
    };
  }

  // chart draws one uPlot chart. spec: title, xLabel, yLabel, x, series ({label, values,
  // color, dash, points, bars, scale, width}), logX, logY, marks, bands, xRange, yRange,
  // axes2 (a second y axis: {scale, label, range}).
  function chart(el, spec) {
    if (!spec.x || spec.x.length === 0) throw new Error("no points to draw");
    const barsPath = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 60] }) : null;
    const series = [{ label: spec.xLabel || "x", value: (u, v) => fmt(v) }];
    spec.series.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      const o = { label: s.label, stroke: color, width: s.width || 2, scale: s.scale || "y", value: (u, v) => fmt(v), spanGaps: false };
      if (s.dash) o.dash = s.dash;
      if (s.points === "only") {
        o.paths = () => null;
        o.points = { show: true, space: 0, size: 5, width: 1, stroke: color, fill: color + "88" };
      } else if (s.points) {
        o.points = { show: true, space: 0, size: 6, fill: color };
      } else if (s.points === false) {
        o.points = { show: false };
      } else {
        // A line needs two neighbouring values: a series of a few values, or one with a
        // value between gaps (a single monitor sample), shows them as dots too.
        const few = sparse(s.values);
        o.points = { show: few > 0, space: 0, size: few > 0 && few <= 3 ? 9 : 5, fill: color };
      }
      if (s.bars && barsPath) {
        o.paths = barsPath;
        o.fill = color + "aa";
        o.width = 1;
        o.fillTo = (u) => u.scales[o.scale].min;
        o.points = { show: false };
      }
      series.push(o);
    });
    const logY = !!spec.logY;
    const scales = {
      x: { time: false },
      y: { distr: logY ? 3 : 1, range: spec.yRange || rangeWith((spec.bands || []).flatMap((b) => [b.lo, b.hi]), logY) },
    };
    if (spec.logX) scales.x.distr = 3;
    if (spec.xRange) scales.x.range = spec.xRange;
    const axes = [
      { label: spec.xLabel || "", values: spec.logX ? logTicks : spec.xTicks || linearTicks },
      { label: spec.yLabel || "", size: 64, values: logY ? logTicks : linearTicks },
    ];
    if (spec.axes2) {
      scales[spec.axes2.scale] = { range: spec.axes2.range };
      axes.push({ scale: spec.axes2.scale, label: spec.axes2.label, side: 1, size: 56, grid: { show: false }, values: linearTicks });
    }
    const opts = {
      title: spec.title || "",
      width: widthOf(el),
      height: HEIGHT,
      scales: scales,
      series: series,
      axes: axes,
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      plugins: [overlays(spec.marks, spec.bands)],
    };
    const logYs = spec.series.map((s) => (s.scale && s.scale !== "y" ? false : logY));
    const u = new uPlot(opts, aligned(spec.x, spec.series.map((s) => s.values), spec.logX, logYs), el);
    redraws.push(() => u.setSize({ width: widthOf(el), height: HEIGHT }));
    return u;
  }

  // fromCurve turns a report Curve into a chart spec.
  function fromCurve(c, extra) {
    return Object.assign({
      title: c.title,
      xLabel: c.x_label,
      yLabel: c.y_label,
      x: c.x || [],
      series: (c.series || []).map((s) => ({ label: s.name, values: s.values })),
      logY: c.log_y,
      marks: c.marks,
      bands: c.bands,
    }, extra || {});
  }

  // diagonal is a y = x line over a curve's x, for calibration and ROC charts.
  function withDiagonal(spec, label) {
    spec.series.push({ label: label, values: spec.x.slice(), color: "#9aa0a6", dash: [6, 5], width: 1.5, points: false });
    return spec;
  }

  const unit = [0, 1];

  const drawers = {
    curve: (el, c) => chart(el, fromCurve(c)),
    range: (el, c) => chart(el, fromCurve(c, { logX: true })),
    bars: (el, c) => {
      const spec = fromCurve(c, { yRange: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] });
      spec.series.forEach((s) => (s.bars = true));
      return chart(el, spec);
    },
    // A reliability diagram: per confidence bin its accuracy and mean confidence against the
    // diagonal, and a series of row counts (named "rows", or any with values above 1) as grey
    // bars on their own axis, kept in the lower third.
    reliability: (el, c) => {
      const spec = fromCurve(c, { xRange: unit, yRange: unit });
      const isCount = (s) => s.label === "rows" || (s.values || []).some((v) => isNum(v) && v > 1);
      const counts = spec.series.filter(isCount);
      counts.forEach((s) => Object.assign(s, { bars: true, scale: "rows", color: "#b0b5bc" }));
      const rates = spec.series.filter((s) => !isCount(s));
      rates.forEach((s, i) => Object.assign(s, { points: true, color: PALETTE[i % PALETTE.length] }));
      spec.series = counts.concat(rates); // bars under the lines
      if (counts.length) spec.axes2 = { scale: "rows", label: "rows", range: (u, min, max) => [0, max > 0 ? max * 3 : 1] };
      return chart(el, withDiagonal(spec, "perfectly calibrated"));
    },
    roc: (el, c) => chart(el, withDiagonal(fromCurve(c, { xRange: unit, yRange: unit }), "chance")),
    pr: (el, c) => chart(el, fromCurve(c, { xRange: unit, yRange: unit })),
    scatter: (el, s) => {
      const spec = {
        title: "predicted against actual",
        xLabel: s.x_label,
        yLabel: s.y_label,
        x: s.x || [],
        series: [
          { label: "rows", values: s.y, points: "only" },
          { label: "predicted = actual", values: (s.x || []).slice(), color: "#5f6670", dash: [6, 5], width: 1.5, points: false },
        ],
      };
      return chart(el, spec);
    },
    ensemble: (el, e) => {
      const members = e.members || [];
      const x = members.map((m, i) => i + 1);
      const series = [{ label: "member val " + e.metric, values: members.map((m) => (m.dropped ? null : m.val_metric)), bars: true }];
      Object.keys(e.combiners || {}).sort().forEach((name) => {
        series.push({ label: name, values: x.map(() => e.combiners[name]), dash: [6, 4], width: 2, points: false });
      });
      return chart(el, {
        title: "members and combiners (val " + e.metric + ")",
        xLabel: "member",
        yLabel: e.metric,
        x: x,
        series: series,
        xRange: [0.5, members.length + 0.5],
        xTicks: (u, splits) => splits.map((v) => (Number.isInteger(v) && v >= 1 && v <= members.length ? "#" + (members[v - 1].index !== undefined ? members[v - 1].index : v) : "")),
      });
    },
    rounds: (el, rounds) => {
      const x = rounds.map((r) => r.round);
      const series = [
        { label: "rows added", values: rounds.map((r) => r.added), bars: true, scale: "rows" },
        { label: "val accuracy", values: rounds.map((r) => r.val_accuracy), points: true },
      ];
      if (rounds.some((r) => r.mean_confidence)) series.push({ label: "mean confidence", values: rounds.map((r) => r.mean_confidence || null), points: true });
      if (rounds.some((r) => r.pseudo_accuracy)) series.push({ label: "pseudo-label accuracy", values: rounds.map((r) => r.pseudo_accuracy || null), points: true });
      return chart(el, {
        title: "pseudo-label rounds",
        xLabel: "round",
        yLabel: "accuracy, confidence",
        x: x,
        series: series,
        yRange: unit,
        xRange: [Math.min.apply(null, x) - 0.5, Math.max.apply(null, x) + 0.5],
        xTicks: (u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : "")),
        axes2: { scale: "rows", label: "rows added", range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      });
    },
    heatmap: drawHeatmap,
  };

  // A white-to-blue ramp for heatmap cells.
  const RAMP = [[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];

  function rampColor(t) {
    t = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
    const i = Math.min(RAMP.length - 2, Math.floor(t)), f = t - i;
    const c = RAMP[i].map((v, k) => Math.round(v + f * (RAMP[i + 1][k] - v)));
    return "rgb(" + c.join(",") + ")";
  }

  // drawHeatmap draws a layer's activation histograms over training: one column per
  // monitor step, one row per bin (low values at the bottom), darker for a larger share.
  function drawHeatmap(el, layer) {
    const hist = layer.histogram || [], steps = layer.steps || [], edges = layer.bin_edges || [];
    const bins = hist.reduce((n, row) => Math.max(n, (row || []).length), 0);
    if (hist.length === 0 || bins === 0) throw new Error("no histogram to draw");
    let top = 0;
    hist.forEach((row) => (row || []).forEach((v) => { if (isNum(v)) top = Math.max(top, v); }));
    const title = document.createElement("div");
    title.className = "u-title";
    title.textContent = "activations over training: " + layer.layer;
    const canvas = document.createElement("canvas");
    const note = document.createElement("div");
    note.className = "chart-note";
    note.textContent = "each column is a monitor step, each row a bin of activation values; darker: a larger share of the activations";
    el.append(title, canvas, note);
    function paint() {
      const W = widthOf(el), H = HEIGHT - 30, dpr = window.devicePixelRatio || 1;
      canvas.width = Math.round(W * dpr);
      canvas.height = Math.round(H * dpr);
      canvas.style.width = W + "px";
      canvas.style.height = H + "px";
      const ctx = canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, W, H);
      const m = { left: 64, right: 10, top: 6, bottom: 38 };
      const pw = W - m.left - m.right, ph = H - m.top - m.bottom;
      const cw = pw / hist.length, ch = ph / bins;
      hist.forEach((row, s) => {
        (row || []).forEach((v, b) => {
          if (!isNum(v) || v <= 0 || top <= 0) return;
          ctx.fillStyle = rampColor(Math.sqrt(v / top));
          ctx.fillRect(m.left + s * cw, m.top + ph - (b + 1) * ch, Math.ceil(cw) + 0.5, Math.ceil(ch) + 0.5);
        });
      });
      ctx.strokeStyle = "#b0b5bc";
      ctx.lineWidth = 1;
      ctx.strokeRect(m.left + 0.5, m.top + 0.5, pw - 1, ph - 1);
      ctx.fillStyle = "#3c4043";
      ctx.font = "11px system-ui, sans-serif";
      ctx.textBaseline = "middle";
      ctx.textAlign = "right";
      if (edges.length > 1) {
        [0, Math.floor((edges.length - 1) / 2), edges.length - 1].forEach((k) => {
          const y = m.top + ph - (k / (edges.length - 1)) * ph;
          ctx.fillText(fmt(edges[k]), m.left - 6, Math.max(m.top + 6, Math.min(m.top + ph - 6, y)));
        });
      }
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      if (steps.length > 0) {
        [0, Math.floor((steps.length - 1) / 2), steps.length - 1].forEach((k) => {
          ctx.fillText(fmt(steps[k]), m.left + (k + 0.5) * cw, m.top + ph + 4);
        });
      }
      ctx.fillText("step", m.left + pw / 2, m.top + ph + 20);
      ctx.save();
      ctx.translate(12, m.top + ph / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText("activation", 0, -6);
      ctx.restore();
    }
    paint();
    redraws.push(paint);
  }

  document.querySelectorAll(".chart[data-draw]").forEach((el) => {
    const kind = el.dataset.draw;
    try {
      const draw = drawers[kind];
      if (!draw) throw new Error("unknown chart kind " + kind);
      const value = resolve(el.dataset.src);
      if (value === undefined || value === null) throw new Error("no data at " + el.dataset.src);
      draw(el, value);
    } catch (err) {
      el.classList.add("failed");
      el.textContent = "This chart could not be drawn: " + err.message;
      console.error("report: chart " + kind + " (" + el.dataset.src + "): " + err.message);
    }
  });

  let pending = 0;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => redraws.forEach((f) => f()), 100);
  });

  // uPlot draws in a microtask after each chart is made: by the next task every chart is on
  // the page.
  setTimeout(() => {
    document.body.dataset.ready = "1";
  }, 0);
})();
