// Bar charts drawn by hand in SVG at the width they are shown at (so labels keep their
// size on a phone), each with a table of the same numbers for screen readers and copying.

import { el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 220;
const PAD = { top: 16, right: 8, bottom: 36, left: 40 };
const ROW = 26; // px per instance in a horizontal chart
const LABEL_PX = 64; // room one day label needs, so labels never overlap

function svg(tag, attributes = {}, content) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (content !== undefined) node.textContent = content;
  return node;
}

function widthOf(container) {
  return Math.max(300, Math.round(container?.clientWidth || 600));
}

function legend(series) {
  return el("figcaption", {}, ...series.map((s) => el("span", { class: `key ${s.cls}` }, s.name)));
}

function table(labels, series, caption, labelName) {
  return el("details", {},
    el("summary", {}, "Show as a table"),
    el("div", { class: "scroll" },
      el("table", {},
        el("caption", { class: "visually-hidden" }, caption),
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, labelName),
          ...series.map((s) => el("th", { scope: "col", class: "num" }, s.name)))),
        el("tbody", {}, ...labels.map((label, i) => el("tr", {},
          el("th", { scope: "row" }, label),
          ...series.map((s) => el("td", { class: "num" }, String(s.values[i] || 0)))))),
      )));
}

/**
 * Vertical grouped bars: labels ["01", "02", ...]; series [{name, values, cls}].
 * `container` is where it will be shown (its width sets the drawing's).
 */
export function barChart(labels, series, caption, labelName = "Label", container = null) {
  const width = widthOf(container);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: "img", "aria-label": `${caption} (the table below has the numbers)` });
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const plotWidth = width - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const group = plotWidth / Math.max(1, labels.length);
  const bar = Math.min(28, Math.max(1, (group * 0.8) / series.length));
  const y = (value) => PAD.top + plotHeight - (value / max) * plotHeight;
  chart.append(
    svg("line", { x1: PAD.left, x2: width - PAD.right, y1: y(0), y2: y(0), class: "axis" }),
    svg("text", { x: PAD.left - 4, y: y(max) + 4, class: "tick end" }, String(max)),
    svg("text", { x: PAD.left - 4, y: y(0), class: "tick end" }, "0"),
  );
  const every = Math.max(1, Math.ceil((labels.length * LABEL_PX) / plotWidth / 1.5));
  labels.forEach((label, i) => {
    const left = PAD.left + i * group + (group - bar * series.length) / 2;
    series.forEach((s, j) => {
      const value = s.values[i] || 0;
      const rect = svg("rect", {
        x: left + j * bar, y: y(value), width: Math.max(1, bar - 1),
        height: y(0) - y(value), class: `bar ${s.cls}`,
      });
      rect.append(svg("title", {}, `${label}: ${value} ${s.name}`));
      chart.append(rect);
    });
    if (i % every === 0) {
      chart.append(svg("text", { x: left + (bar * series.length) / 2, y: HEIGHT - PAD.bottom + 16, class: "tick middle" }, label));
    }
  });
  return el("figure", {}, chart, legend(series), table(labels, series, caption, labelName));
}

/** Horizontal bars, one row per label (instances): as tall as it needs, names never overlap. */
export function rowChart(labels, series, caption, labelName = "Label", container = null) {
  const width = widthOf(container);
  const left = Math.min(180, Math.round(width * 0.38));
  const height = PAD.top + labels.length * ROW + 8;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `${caption} (the table below has the numbers)` });
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const plot = width - left - PAD.right - 36;
  const thick = (ROW - 6) / series.length;
  labels.forEach((label, i) => {
    const top = PAD.top + i * ROW;
    const name = label.length > 22 ? `${label.slice(0, 21)}…` : label;
    const tick = svg("text", { x: left - 6, y: top + ROW / 2 - 2, class: "tick end" }, name);
    tick.append(svg("title", {}, label));
    chart.append(tick);
    series.forEach((s, j) => {
      const value = s.values[i] || 0;
      const rect = svg("rect", {
        x: left, y: top + j * thick, width: Math.max(1, (value / max) * plot), height: thick - 1,
        class: `bar ${s.cls}`,
      });
      rect.append(svg("title", {}, `${label}: ${value} ${s.name}`));
      chart.append(rect);
    });
  });
  chart.append(svg("line", { x1: left, x2: left, y1: PAD.top - 4, y2: height - 4, class: "axis" }));
  return el("figure", {}, chart, legend(series), table(labels, series, caption, labelName));
}

/** The days of the current UTC month up to today, as "YYYY-MM-DD". */
export function monthDays(now = new Date()) {
  const days = [];
  for (let d = 1; d <= now.getUTCDate(); d++) {
    days.push(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), d)).toISOString().slice(0, 10));
  }
  return days;
}

/** Sent/received series over `days` from dailyStats rows ({date, messagesSent, messagesReceived}). */
export function dailySeries(days, dailyStats) {
  const sent = Object.fromEntries(days.map((d) => [d, 0]));
  const received = { ...sent };
  for (const row of dailyStats) {
    const day = row.date.slice(0, 10);
    if (day in sent) {
      sent[day] += row.messagesSent;
      received[day] += row.messagesReceived;
    }
  }
  return [
    { name: "sent", cls: "sent", values: days.map((d) => sent[d]) },
    { name: "received", cls: "received", values: days.map((d) => received[d]) },
  ];
}
