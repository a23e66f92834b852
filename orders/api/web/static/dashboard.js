// The ops pages: figures pushed by /ops/stream (Server-Sent Events; the browser reconnects by
// itself), and the buttons that act on orders and deliveries. No inline script, no innerHTML with
// data: every value goes in as text.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const SVG = "http://www.w3.org/2000/svg";

function text(tag, value, attrs = {}) {
  const node = document.createElement(tag);
  node.textContent = value ?? "";
  for (const [name, v] of Object.entries(attrs)) node.setAttribute(name, v);
  return node;
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value >= 10000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`;
}

function when(iso) {
  return iso.replace("T", " ").slice(0, 19); // UTC, as the server writes it
}

function percent(rate) {
  return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)} %`;
}

function button(label, action, data) {
  const b = text("button", label, { type: "button", "data-action": action });
  for (const [k, v] of Object.entries(data)) b.dataset[k] = v;
  return b;
}

function drawChart(svg, perMinute) {
  const width = 720, height = 220, left = 36, bottom = 24, top = 10;
  svg.replaceChildren();
  const series = [perMinute.placed, perMinute.completed];
  const most = Math.max(1, ...series.flat());
  const n = perMinute.minutes.length;
  const x = (i) => left + (i * (width - left - 8)) / Math.max(1, n - 1);
  const y = (v) => height - bottom - (v * (height - bottom - top)) / most;
  const line = (x1, y1, x2, y2, cls) => {
    const l = document.createElementNS(SVG, "line");
    Object.entries({ x1, y1, x2, y2 }).forEach(([k, v]) => l.setAttribute(k, v));
    l.setAttribute("class", cls);
    svg.append(l);
  };
  const label = (x0, y0, value, anchor) => {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", x0);
    t.setAttribute("y", y0);
    t.setAttribute("text-anchor", anchor);
    t.textContent = value;
    svg.append(t);
  };
  line(left, height - bottom, width - 8, height - bottom, "axis");
  line(left, top, left, height - bottom, "axis");
  label(left - 6, top + 8, String(most), "end");
  label(left - 6, height - bottom, "0", "end");
  label(left, height - 6, "60 min ago", "start");
  label(width - 8, height - 6, "now", "end");
  ["placed", "completed"].forEach((name, k) => {
    const path = document.createElementNS(SVG, "polyline");
    path.setAttribute("class", name);
    path.setAttribute("points", series[k].map((v, i) => `${x(i)},${y(v)}`).join(" "));
    svg.append(path);
  });
}

function renderFailed(tbody, failed) {
  const rows = failed.map((o) => {
    const tr = document.createElement("tr");
    tr.dataset.order = o.id;
    const number = document.createElement("td");
    number.append(text("a", `#${o.number}`, { href: `/ops/dashboard/orders/${o.id}` }));
    const act = document.createElement("td");
    act.append(button("Retry", "retry", { order: o.id }));
    tr.append(number, text("td", o.step), text("td", o.reason, { class: "reason" }),
      text("td", when(o.failed_at)), act);
    return tr;
  });
  if (!rows.length) rows.push(emptyRow("No failed orders.", 5));
  tbody.replaceChildren(...rows);
}

function renderEndpoints(tbody, endpoints) {
  const rows = endpoints.map((e) => {
    const tr = document.createElement("tr");
    const failed = document.createElement("td");
    e.failed.forEach((d) => failed.append(button(`Redeliver ${d.event_type}`, "redeliver",
      { delivery: d.id })));
    tr.append(text("td", e.url, { class: "url" }),
      text("td", e.enabled ? "enabled" : `disabled: ${e.disabled_reason ?? ""}`),
      text("td", percent(e.success_rate)), text("td", e.last_error ?? "", { class: "reason" }),
      failed);
    return tr;
  });
  if (!rows.length) rows.push(emptyRow("No webhook endpoints.", 5));
  tbody.replaceChildren(...rows);
}

function number(value, suffix = "") {
  return value === null || value === undefined ? "–" : `${Math.round(value).toLocaleString("en")}${suffix}`;
}

function renderImports(tbody, imports) {
  const rows = imports.map((j) => {
    const tr = document.createElement("tr");
    tr.dataset.job = j.id;
    const bar = document.createElement("td");
    const percent = `${j.percent.toFixed(1)} %`;
    const progress = text("progress", percent, { max: "100", "aria-label": "imported" });
    progress.value = j.percent;
    bar.append(progress, " ", text("span", percent, { class: "percent" }));
    const skipped = text("td", "", { class: "num" });
    if (j.rows_failed) {
      skipped.append(text("a", number(j.rows_failed), { href: `/ops/imports/${j.id}/errors.csv` }));
    } else skipped.textContent = "0";
    const act = document.createElement("td");
    if (j.cancellable) act.append(button("Cancel", "cancel-import", { job: j.id }));
    tr.append(text("td", when(j.created_at)), text("td", j.status), bar,
      text("td", number(j.rows_done), { class: "num" }), skipped,
      text("td", number(j.rows_per_s), { class: "num" }),
      text("td", number(j.eta_s, " s"), { class: "num" }), act);
    return tr;
  });
  if (!rows.length) rows.push(emptyRow("No stock imports.", 8));
  tbody.replaceChildren(...rows);
}

function emptyRow(message, span) {
  const tr = document.createElement("tr");
  tr.className = "empty";
  tr.append(text("td", message, { colspan: String(span) }));
  return tr;
}

function show(figures) {
  document.querySelectorAll("[data-status]").forEach((node) => {
    node.textContent = figures.orders_by_status[node.dataset.status] ?? 0;
  });
  document.querySelectorAll("[data-figure]").forEach((node) => {
    node.textContent = figures[node.dataset.figure];
  });
  document.querySelectorAll("[data-queue]").forEach((node) => {
    const depth = figures.queue_depths[node.dataset.queue];
    node.textContent = depth === null || depth === undefined ? "–" : depth;
  });
  document.querySelectorAll("[data-step]").forEach((node) => {
    node.textContent = ms(figures.step_times_ms[node.dataset.step]?.[node.dataset.p]);
  });
  const chart = document.getElementById("chart");
  if (chart) drawChart(chart, figures.per_minute);
  const failed = document.getElementById("failed");
  if (failed) renderFailed(failed, figures.failed_orders);
  const imports = document.getElementById("imports");
  if (imports) renderImports(imports, figures.imports);
  const endpoints = document.getElementById("endpoints");
  if (endpoints) renderEndpoints(endpoints, figures.webhook_endpoints);
}

function follow() {
  const live = document.getElementById("live");
  const order = document.getElementById("order")?.dataset.order;
  const source = new EventSource(order ? `/ops/stream?order=${order}` : "/ops/stream");
  source.addEventListener("open", () => {
    live.dataset.state = "live";
    live.textContent = "live";
  });
  source.addEventListener("error", () => {
    live.dataset.state = "reconnecting";
    live.textContent = "reconnecting…";
  });
  source.addEventListener("figures", (event) => show(JSON.parse(event.data)));
  source.addEventListener("order", () => window.location.reload());
}

async function act(target) {
  const { action, order, delivery, job } = target.dataset;
  const requests = {
    "cancel-import": [`/ops/imports/${job}/cancel`, null],
    retry: [`/ops/orders/${order}/retry`, null],
    cancel: [`/ops/orders/${order}/cancel`, {}],
    redeliver: [`/ops/webhook-deliveries/${delivery}/redeliver`, null],
  };
  if (!(action in requests)) return;
  if (action === "cancel" && !window.confirm("Cancel this order and give the money back?")) return;
  const [url, body] = requests[action];
  target.disabled = true;
  const headers = { "X-CSRF-Token": csrf, "Idempotency-Key": crypto.randomUUID() };
  if (body !== null) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method: "POST", headers, body: body === null ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const answer = await response.json().catch(() => ({}));
  const message = document.getElementById("message");
  const said = response.ok ? `${action}: accepted` : `${action}: ${answer.detail ?? response.status}`;
  if (message) message.textContent = said;
  target.textContent = response.ok ? "Accepted" : "Refused";
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("button[data-action]");
  if (target) act(target);
});

const initial = document.getElementById("figures");
if (initial) show(JSON.parse(initial.textContent));
if (document.getElementById("live")) follow();
