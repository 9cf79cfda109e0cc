// Grouped SVG bar charts, drawn by hand: one group per label, one bar per series.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 220;
const PAD = { top: 16, right: 8, bottom: 36, left: 36 };

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * labels: ["01", "02", ...]; series: [{name, values, cls}] with one value per label.
 * Returns a <figure> with the chart and its legend.
 */
export function barChart(labels, series, caption) {
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": caption });
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const group = plotWidth / Math.max(1, labels.length);
  const bar = Math.min(28, Math.max(1, (group * 0.8) / series.length));
  const y = (value) => PAD.top + plotHeight - (value / max) * plotHeight;

  chart.append(
    svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0), class: "axis" }),
    svg("text", { x: PAD.left - 4, y: y(max) + 4, class: "tick end" }, String(max)),
    svg("text", { x: PAD.left - 4, y: y(0), class: "tick end" }, "0"),
  );
  const every = Math.ceil(labels.length / 12);
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

  const legend = document.createElement("figcaption");
  for (const s of series) {
    const key = document.createElement("span");
    key.className = `key ${s.cls}`;
    key.textContent = s.name;
    legend.append(key);
  }
  const figure = document.createElement("figure");
  figure.append(chart, legend);
  return figure;
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
