// The script of pipe's run report. It reads the run's data from the JSON element #report-data
// and draws every element of class "chart" that has a data-draw attribute, from the part of
// the data its data-src names (a dotted path: "stages.2.training.curves.0"): line, bar and
// point charts with uPlot, heatmaps and a search's parallel coordinates on a canvas. The other charts (the DAG, the confusion
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
            ctx.strokeStyle = m.color || (i % 2 ? "#6a1b9a" : "#37474f");
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
  // color, dash, points, size, bars, stepped, scale, width}), logX, logY, marks, bands, xRange,
  // yRange, xTicks, xSplits, axes2 (a second y axis: {scale, label, range}), height, plugins (more
  // uPlot plugins, drawn over the marks).
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
        o.points = { show: true, space: 0, size: s.size || 5, width: 1, stroke: color, fill: color + "88" };
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
      if (s.stepped && uPlot.paths && uPlot.paths.stepped) {
        o.paths = uPlot.paths.stepped({ align: 1 });
        o.points = { show: false };
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
      { label: spec.xLabel || "", values: spec.xTicks || (spec.logX ? logTicks : linearTicks) },
      { label: spec.yLabel || "", size: 64, values: logY ? logTicks : linearTicks },
    ];
    if (spec.xSplits) {
      axes[0].splits = spec.xSplits;
      axes[0].filter = (u, splits) => splits; // a log axis would drop all but its powers of ten
    }
    if (spec.axes2) {
      scales[spec.axes2.scale] = { range: spec.axes2.range };
      axes.push({ scale: spec.axes2.scale, label: spec.axes2.label, side: 1, size: 56, grid: { show: false }, values: linearTicks });
    }
    const height = spec.height || HEIGHT;
    const opts = {
      title: spec.title || "",
      width: widthOf(el),
      height: height,
      scales: scales,
      series: series,
      axes: axes,
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      plugins: [overlays(spec.marks, spec.bands)].concat(spec.plugins || []),
    };
    const logYs = spec.series.map((s) => (s.scale && s.scale !== "y" ? false : logY));
    const u = new uPlot(opts, aligned(spec.x, spec.series.map((s) => s.values), spec.logX, logYs), el);
    redraws.push(() => u.setSize({ width: widthOf(el), height: height }));
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
    trials: drawTrials,
    bestsofar: drawBestSoFar,
    effect: drawEffect,
    parallel: drawParallel,
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

  // A search stage's charts: its trials over time, the best objective trial after trial, each
  // parameter against the objective, and the trials as parallel coordinates. A trial is
  // coloured by its status; the best trial is ringed (outlined in the parallel coordinates).

  const STATUS = { completed: "#1f77b4", pruned: "#ff7f0e", failed: "#d62728" };
  const STATUS_LABEL = { completed: "completed", pruned: "pruned (objective when stopped)", failed: "failed" };
  const BEST = "#2ca02c";
  const ROUND_MARK = "#8a9099";

  // searchOf returns the search that a data-src path points into: for
  // "stages.9.search.effects.2", the data at "stages.9.search".
  function searchOf(path) {
    const m = /^stages\.\d+\.search(?=\.|$)/.exec(String(path || ""));
    const sr = m ? resolve(m[0]) : null;
    if (!sr) throw new Error("no search at " + path);
    return sr;
  }

  function objectiveLabel(sr) {
    return (sr.objective || "objective") + (sr.maximize ? " (↑ better)" : " (↓ better)");
  }

  // roundMarks are the vertical marks where each zoom round after the first begins: at its
  // first trial's x (at(trial)), shifted by shift.
  function roundMarks(trials, at, shift) {
    const first = {};
    trials.forEach((t) => {
      const x = at(t);
      if (t.round > 0 && isNum(x) && (!(t.round in first) || x < first[t.round])) first[t.round] = x;
    });
    return Object.keys(first).map(Number).sort((a, b) => a - b)
      .map((r) => ({ x: first[r] + (shift || 0), label: "round " + r, color: ROUND_MARK }));
  }

  // statusSeries are one points-only series per status that has an objective: values[i] is
  // the objective of point i when its status is that one.
  function statusSeries(statuses, objectives) {
    const out = [];
    ["completed", "pruned", "failed"].forEach((st) => {
      const values = objectives.map((v, i) => (statuses[i] === st && isNum(v) ? v : null));
      if (values.some(isNum)) out.push({ label: STATUS_LABEL[st], values: values, points: "only", color: STATUS[st], size: 7 });
    });
    return out;
  }

  // trialOverlay draws over a chart of trials: spans (each trial's run, a thin line from its
  // start to its end at its objective), the failed trials (no objective) as × on the x axis at
  // failedXs, and a ring round the best trial's point best ([x, y]).
  function trialOverlay(spans, failedXs, best) {
    return {
      hooks: {
        draw: [function (u) {
          const px = uPlot.pxRatio || 1;
          const ctx = u.ctx;
          const { left, top, width, height } = u.bbox;
          ctx.save();
          ctx.beginPath();
          ctx.rect(left, top, width, height);
          ctx.clip();
          ctx.lineWidth = 2 * px;
          spans.forEach((s) => {
            const y = u.valToPos(s.y, "y", true);
            ctx.strokeStyle = s.color + "66";
            ctx.beginPath();
            ctx.moveTo(u.valToPos(s.x0, "x", true), y);
            ctx.lineTo(u.valToPos(s.x1, "x", true), y);
            ctx.stroke();
          });
          const r = 4 * px, y = top + height - r - 2 * px;
          ctx.strokeStyle = STATUS.failed;
          ctx.lineWidth = 2 * px;
          failedXs.forEach((fx) => {
            const x = u.valToPos(fx, "x", true);
            ctx.beginPath();
            ctx.moveTo(x - r, y - r);
            ctx.lineTo(x + r, y + r);
            ctx.moveTo(x - r, y + r);
            ctx.lineTo(x + r, y - r);
            ctx.stroke();
          });
          if (best && isNum(best[0]) && isNum(best[1])) {
            ctx.strokeStyle = BEST;
            ctx.lineWidth = 2.5 * px;
            ctx.beginPath();
            ctx.arc(u.valToPos(best[0], "x", true), u.valToPos(best[1], "y", true), 8 * px, 0, 2 * Math.PI);
            ctx.stroke();
          }
          ctx.restore();
        }],
      },
    };
  }

  // chartNote adds a line of explanation under a chart.
  function chartNote(el, text) {
    const note = document.createElement("div");
    note.className = "chart-note";
    note.textContent = text;
    el.append(note);
    return note;
  }

  function failedNote(n, where) {
    return n ? (n === 1 ? "1 failed trial (no objective) is" : n + " failed trials (no objective) are") + " the red × on " + where + ". " : "";
  }

  // drawTrials draws each trial's objective against when it started, coloured by status, its
  // run as a thin line to when it ended, and where each zoom round began.
  function drawTrials(el, sr) {
    const trials = sr.trials || [];
    if (trials.length === 0) throw new Error("no trials to draw");
    const x = trials.map((t) => t.start || 0);
    const end = trials.reduce((m, t) => Math.max(m, (t.start || 0) + (t.seconds || 0)), 0) || 1;
    const failed = trials.filter((t) => !isNum(t.objective));
    const best = trials.find((t) => t.index === sr.best && isNum(t.objective));
    const spans = trials.filter((t) => isNum(t.objective) && t.seconds > 0)
      .map((t) => ({ x0: t.start || 0, x1: (t.start || 0) + t.seconds, y: t.objective, color: STATUS[t.status] || "#7f7f7f" }));
    chart(el, {
      title: "trials over time",
      xLabel: "seconds after the search started",
      yLabel: objectiveLabel(sr),
      x: x,
      series: statusSeries(trials.map((t) => t.status), trials.map((t) => t.objective)),
      marks: roundMarks(trials, (t) => t.start),
      xRange: [-0.02 * end, 1.03 * end],
      plugins: [trialOverlay(spans, failed.map((t) => t.start || 0), best ? [best.start || 0, best.objective] : null)],
    });
    chartNote(el, "Each point is a trial at its start, its line how long it ran; the best trial is ringed. " + failedNote(failed.length, "the time axis"));
  }

  // drawBestSoFar draws each trial's objective by trial index, coloured by status, and the
  // best objective of the completed trials so far as a step line.
  function drawBestSoFar(el, c, path) {
    const sr = searchOf(path);
    const byIndex = {};
    (sr.trials || []).forEach((t) => (byIndex[t.index] = t));
    const x = c.x || [];
    const own = ((c.series || [])[0] || {}).values || [];
    const best = ((c.series || [])[1] || {}).values || [];
    const statuses = x.map((i) => (byIndex[i] || {}).status);
    const series = statusSeries(statuses, own);
    series.push({ label: ((c.series || [])[1] || {}).name || "best so far", values: best, stepped: true, color: BEST, width: 2.5 });
    const failedXs = x.filter((v, i) => !isNum(own[i]));
    const bi = x.indexOf(sr.best);
    const lo = Math.min.apply(null, x), hi = Math.max.apply(null, x);
    chart(el, {
      title: c.title || "objective by trial",
      xLabel: c.x_label || "trial",
      yLabel: objectiveLabel(sr),
      x: x,
      series: series,
      marks: (c.marks || []).concat(roundMarks(sr.trials || [], (t) => t.index, -0.5)),
      xRange: [lo - 0.5, hi + 0.5],
      xTicks: (u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : "")),
      plugins: [trialOverlay([], failedXs, bi >= 0 ? [sr.best, own[bi]] : null)],
    });
    chartNote(el, "The line is the best objective of the completed trials so far; a pruned trial's partial value does not count. " + failedNote(failedXs.length, "the trial axis"));
  }

  // log125 are the values 1, 2 and 5 × 10^k from lo to hi (only the powers of ten when the
  // range spans more than decades decades and has at least three of them).
  function log125(lo, hi, decades) {
    const gen = (ms) => {
      const out = [];
      for (let k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
        ms.forEach((m) => {
          const v = +(m * Math.pow(10, k)).toPrecision(12);
          if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
        });
      }
      return out;
    };
    const out = Math.log10(hi / lo) > decades ? gen([1]) : [];
    return out.length >= 3 ? out : gen([1, 2, 5]); // too few powers of ten: 1, 2 and 5 too
  }

  // niceTicks are about n round values from lo to hi.
  function niceTicks(lo, hi, n) {
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw * (1 - 1e-9));
    const out = [];
    for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  // paramKind tells how a parameter's values are laid out: a choice's labels, a log scale, or
  // a linear one.
  function paramKind(p) {
    return {
      labels: p && p.labels && p.labels.length ? p.labels : null,
      log: !!p && (p.dist === "log_uniform" || p.dist === "log_int"),
    };
  }

  // drawEffect draws one parameter's value against the objective: one point per trial that
  // has the parameter and an objective, coloured by status; a choice's values as categories
  // (its points spread a little around each, the same way every time, so that they do not
  // hide each other), a log parameter on a log axis over the space's range.
  function drawEffect(el, e, path) {
    const sr = searchOf(path);
    const pts = e.points || [];
    if (pts.length === 0) throw new Error("no trial has " + e.param);
    const p = (sr.params || []).find((q) => q.name === e.param) || { name: e.param };
    const { labels, log } = paramKind(p);
    const jitter = (trial) => (labels ? (((trial * 0.6180339887) % 1) - 0.5) * 0.4 : 0);
    const x = pts.map((q) => q.x + jitter(q.trial));
    let lo = Math.min.apply(null, pts.map((q) => q.x)), hi = Math.max.apply(null, pts.map((q) => q.x));
    if (isNum(p.lo) && isNum(p.hi) && p.hi > p.lo && !labels) {
      lo = Math.min(lo, p.lo);
      hi = Math.max(hi, p.hi);
    }
    let xRange, xTicks, xSplits;
    if (labels) {
      xRange = [-0.5, labels.length - 0.5];
      xSplits = () => labels.map((l, i) => i);
      xTicks = (u, splits) => splits.map((v) => (Number.isInteger(v) && v >= 0 && v < labels.length ? labels[v] : ""));
    } else if (log && lo > 0) {
      const f = hi > lo ? Math.pow(hi / lo, 0.04) : 2;
      xRange = [lo / f, hi * f];
      const ticks = log125(lo / f, hi * f, 1.6);
      xSplits = ticks.length >= 2 ? () => ticks : undefined;
      xTicks = xSplits ? (u, splits) => splits.map((v) => (isNum(v) ? fmt(v) : "")) : logTicks;
    } else {
      const pad = hi > lo ? 0.04 * (hi - lo) : Math.abs(lo) * 0.1 || 1;
      xRange = [lo - pad, hi + pad];
    }
    el.dataset.x = labels ? "choice" : log && lo > 0 ? "log" : "linear"; // for the tests
    const best = pts.find((q) => q.trial === sr.best);
    chart(el, {
      title: e.param + (log ? " (log scale)" : labels ? " (choice)" : ""),
      xLabel: e.param,
      yLabel: sr.objective,
      x: x,
      series: statusSeries(pts.map((q) => q.status), pts.map((q) => q.objective)),
      logX: log && lo > 0,
      xRange: xRange,
      xTicks: xTicks,
      xSplits: xSplits,
      height: 210,
      plugins: [trialOverlay([], [], best ? [best.x + jitter(best.trial), best.objective] : null)],
    });
  }

  // PAR_RAMP colours a line of the parallel coordinates by its objective: from red (the
  // worst) to blue (the best).
  const PAR_RAMP = [[215, 48, 39], [244, 109, 67], [253, 174, 97], [116, 173, 209], [69, 117, 180], [49, 54, 149]];

  function parColor(t, alpha) {
    t = Math.max(0, Math.min(1, isNum(t) ? t : 0)) * (PAR_RAMP.length - 1);
    const i = Math.min(PAR_RAMP.length - 2, Math.floor(t)), f = t - i;
    const c = PAR_RAMP[i].map((v, k) => Math.round(v + f * (PAR_RAMP[i + 1][k] - v)));
    return "rgba(" + c.join(",") + "," + alpha + ")";
  }

  // parallelScale is one axis' scale: t(v) is a value's height from 0 (bottom) to 1 (top),
  // ticks its labelled values. A numeric axis spans its range widened to every value, on a
  // log scale for a log parameter; a choice's labels sit in equal slots; the objective's
  // axis has the better values at the top.
  function parallelScale(a, values, objective, maximize) {
    const labels = a.labels && a.labels.length ? a.labels : null;
    const vals = values.filter(isNum);
    let lo = Math.min.apply(null, vals.concat(isNum(a.lo) && !labels ? [a.lo] : []));
    let hi = Math.max.apply(null, vals.concat(isNum(a.hi) && !labels ? [a.hi] : []));
    let log = !!a.log && !labels;
    if (log && !(lo > 0)) {
      const pos = vals.filter((v) => v > 0);
      log = pos.length > 0 && pos.length === vals.length;
      if (log) lo = Math.min.apply(null, pos);
    }
    const flip = objective && !maximize;
    const t = (v) => {
      let f;
      if (labels) f = (v + 0.5) / labels.length;
      else if (!(hi > lo)) f = 0.5;
      else if (log) f = (Math.log(v) - Math.log(lo)) / (Math.log(hi) - Math.log(lo));
      else f = (v - lo) / (hi - lo);
      return flip ? 1 - f : f;
    };
    let ticks;
    if (labels) {
      ticks = labels.map((l, i) => ({ v: i, label: l }));
    } else if (!(hi > lo)) {
      ticks = isNum(lo) ? [{ v: lo, label: fmt(lo) }] : [];
    } else {
      let vs = log ? log125(lo, hi, 2.5) : niceTicks(lo, hi, 5);
      if (vs.length < 2) vs = [lo, hi];
      ticks = vs.map((v) => ({ v: v, label: fmt(v) }));
    }
    return { name: a.name, t: t, ticks: ticks, labels: labels, log: log, missing: values.some((v) => !isNum(v)) };
  }

  // drawParallel draws the trials as parallel coordinates on a canvas: one vertical axis per
  // parameter and the objective's last, one line per trial through its values, coloured by
  // its objective (dashed for a pruned trial), the best trial outlined; a parameter a trial
  // lacks (its condition did not hold) at "not set" under its axis; and beside each numeric
  // axis the range each zoom round after the first sampled.
  function drawParallel(el, par, path) {
    const sr = searchOf(path);
    const axes = par.axes || [], lines = par.lines || [];
    if (axes.length < 2 || lines.length === 0) throw new Error("no trial has an objective: no lines to draw");
    const last = axes.length - 1;
    const scales = axes.map((a, k) => parallelScale(a, lines.map((l) => (l.values || [])[k]), k === last, sr.maximize));
    el.dataset.axes = scales.map((sc) => (sc.labels ? "choice" : sc.log ? "log" : "linear")).join(" "); // for the tests
    const objT = (l) => scales[last].t((l.values || [])[last]);
    const order = lines.slice().sort((a, b) => objT(a) - objT(b)); // the best drawn last, on top
    const best = lines.find((l) => l.trial === sr.best);
    const full = ((sr.rounds || []).find((r) => r.round === 0) || {}).ranges || {};
    const regions = (sr.rounds || []).filter((r) => r.round > 0 && r.ranges);
    const anyMissing = scales.some((s) => s.missing);

    const title = document.createElement("div");
    title.className = "u-title";
    title.textContent = "parallel coordinates: " + lines.length + " trials";
    const canvas = document.createElement("canvas");
    el.append(title, canvas);

    function paint() {
      const W = widthOf(el), H = 360, dpr = window.devicePixelRatio || 1;
      canvas.width = Math.round(W * dpr);
      canvas.height = Math.round(H * dpr);
      canvas.style.width = W + "px";
      canvas.style.height = H + "px";
      const ctx = canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, W, H);
      const m = { left: 76, right: 96, top: 48, bottom: 14 }, slot = 24;
      const ph = H - m.top - m.bottom - (anyMissing ? slot + 6 : 0);
      const gap = (W - m.left - m.right) / last;
      const X = (k) => m.left + k * gap;
      const Y = (k, v) => (isNum(v) ? m.top + (1 - scales[k].t(v)) * ph : m.top + ph + slot);
      ctx.font = "11px system-ui, sans-serif";

      // The zoom rounds' regions, beside their axes.
      regions.forEach((rg, r) => {
        Object.keys(rg.ranges).forEach((name) => {
          const k = axes.findIndex((a) => a.name === name);
          if (k < 0 || k === last || scales[k].labels) return;
          const range = rg.ranges[name], whole = full[name];
          if (whole && whole[0] === range[0] && whole[1] === range[1]) return; // not narrowed
          const y0 = Math.max(m.top, Math.min(Y(k, range[0]), Y(k, range[1])));
          const y1 = Math.min(m.top + ph, Math.max(Y(k, range[0]), Y(k, range[1])));
          if (!(y1 > y0)) return;
          ctx.fillStyle = "rgba(106,27,154," + (0.25 + 0.45 * (r + 1) / regions.length) + ")";
          ctx.fillRect(X(k) + 4 + 5 * r, y0, 3, Math.max(1, y1 - y0));
        });
      });

      // The lines, the worst first; the best trial's outlined, over the others.
      const stroke = (l, width, color) => {
        ctx.lineWidth = width;
        ctx.strokeStyle = color;
        ctx.setLineDash(l.status === "pruned" ? [5, 4] : []);
        ctx.beginPath();
        axes.forEach((a, k) => {
          const y = Y(k, (l.values || [])[k]);
          if (k === 0) ctx.moveTo(X(k), y);
          else ctx.lineTo(X(k), y);
        });
        ctx.stroke();
      };
      order.forEach((l) => stroke(l, 1.6, parColor(objT(l), l.status === "pruned" ? 0.6 : 0.85)));
      if (best) {
        stroke(best, 5, "#111");
        stroke(best, 2.5, parColor(objT(best), 1));
      }
      ctx.setLineDash([]);

      // The axes, their ticks and names.
      scales.forEach((sc, k) => {
        const x = X(k);
        ctx.strokeStyle = "#5f6670";
        ctx.lineWidth = 1;
        ctx.beginPath();
        ctx.moveTo(x + 0.5, m.top);
        ctx.lineTo(x + 0.5, m.top + ph);
        ctx.stroke();
        ctx.fillStyle = "#3c4043";
        ctx.textAlign = "right";
        ctx.textBaseline = "middle";
        let prev = -Infinity;
        sc.ticks.forEach((tk) => {
          const y = Y(k, tk.v);
          if (Math.abs(y - prev) < 13) return;
          prev = y;
          ctx.beginPath();
          ctx.moveTo(x - 3, y + 0.5);
          ctx.lineTo(x + 0.5, y + 0.5);
          ctx.stroke();
          haloText(ctx, clip(ctx, tk.label, (k === 0 ? m.left : gap) - 14), x - 5, y);
        });
        if (sc.missing) {
          ctx.fillStyle = "#8a9099";
          haloText(ctx, "not set", x - 5, m.top + ph + slot);
          ctx.beginPath();
          ctx.arc(x + 0.5, m.top + ph + slot, 2.5, 0, 2 * Math.PI);
          ctx.fill();
        }
        ctx.fillStyle = k === last ? "#1b1f24" : "#3c4043";
        ctx.textAlign = "center";
        ctx.textBaseline = "bottom";
        const name = k === last ? (sc.name || "objective") + (sr.maximize ? " ↑" : " ↓") : sc.name;
        axisName(ctx, name, x, m.top - 8, Math.max(gap - 8, 60), k === last);
      });
      if (best) {
        ctx.fillStyle = "#111";
        ctx.textAlign = "left";
        ctx.textBaseline = "middle";
        ctx.font = "600 11px system-ui, sans-serif";
        haloText(ctx, "best: trial " + best.trial, X(last) + 8, Math.max(m.top + 6, Y(last, best.values[last])));
      }
    }
    paint();
    redraws.push(paint);

    // The legend: the objective's colours, what dashes, outlines, bars and "not set" mean.
    const note = chartNote(el, "");
    const objs = lines.map((l) => (l.values || [])[last]).filter(isNum);
    const worst = sr.maximize ? Math.min.apply(null, objs) : Math.max.apply(null, objs);
    const top = sr.maximize ? Math.max.apply(null, objs) : Math.min.apply(null, objs);
    const ramp = document.createElement("span");
    ramp.className = "ramp";
    ramp.style.background = "linear-gradient(to right, " + [0, 0.2, 0.4, 0.6, 0.8, 1].map((t) => parColor(t, 1)).join(", ") + ")";
    note.append("colour: " + (sr.objective || "objective") + " from " + fmt(worst) + " ", ramp, " to " + fmt(top) + ". ");
    const failed = (sr.trials || []).length - lines.length;
    const parts = [];
    if (best) parts.push("Outlined: the best trial, " + best.trial + ".");
    if (lines.some((l) => l.status === "pruned")) parts.push("Dashed: a pruned trial (its objective when it stopped).");
    if (anyMissing) parts.push("Not set: the parameter's condition did not hold in that trial.");
    if (regions.length === 1) parts.push("Beside an axis, the purple bar is the range zoom round 1 sampled.");
    else if (regions.length > 1) parts.push("Beside an axis, the purple bars are the ranges zoom rounds 1 to " + regions.length + " sampled.");
    if (failed > 0) parts.push(failed + " failed trial" + (failed > 1 ? "s" : "") + " (no objective) left out.");
    note.append(parts.join(" "));
  }

  // haloText writes text with a white outline, readable over the lines.
  function haloText(ctx, text, x, y) {
    ctx.save();
    ctx.strokeStyle = "rgba(255,255,255,0.9)";
    ctx.lineWidth = 3;
    ctx.lineJoin = "round";
    ctx.strokeText(text, x, y);
    ctx.restore();
    ctx.fillText(text, x, y);
  }

  // clip shortens text to fit width pixels, with an ellipsis.
  function clip(ctx, text, width) {
    text = String(text);
    if (ctx.measureText(text).width <= width) return text;
    while (text.length > 1 && ctx.measureText(text + "…").width > width) text = text.slice(0, -1);
    return text + "…";
  }

  // axisName writes an axis' name centred above it at baseline y, on two lines (split after
  // its last dot) when it does not fit width.
  function axisName(ctx, name, x, y, width, bold) {
    ctx.font = (bold ? "600 " : "") + "12px system-ui, sans-serif";
    const dot = name.lastIndexOf(".");
    if (ctx.measureText(name).width > width && dot > 0) {
      ctx.fillText(clip(ctx, name.slice(0, dot + 1), width), x, y - 14);
      ctx.fillText(clip(ctx, name.slice(dot + 1), width), x, y);
    } else {
      ctx.fillText(clip(ctx, name, width), x, y);
    }
    ctx.font = "11px system-ui, sans-serif";
  }

  document.querySelectorAll(".chart[data-draw]").forEach((el) => {
    const kind = el.dataset.draw;
    try {
      const draw = drawers[kind];
      if (!draw) throw new Error("unknown chart kind " + kind);
      const value = resolve(el.dataset.src);
      if (value === undefined || value === null) throw new Error("no data at " + el.dataset.src);
      draw(el, value, el.dataset.src);
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
