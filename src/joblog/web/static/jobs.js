/* The jobs list: keeps the server-rendered table live by polling the JSON API. */
(function () {
  "use strict";
  const J = window.joblog;
  const body = document.getElementById("jobs-body");
  const empty = document.querySelector("[data-testid=jobs-empty]");
  const state = document.querySelector("[data-testid=list-state]");
  const form = document.querySelector("form.filters");
  const limit = document.currentScript.dataset.limit || "50";
  // The API query equivalent to this page (filters, sort, cursor), built by the server.
  const apiUrl = document.currentScript.dataset.apiUrl;
  const nextLink = document.querySelector("[data-testid=next-page]");
  const POLL_MS = 2000;

  // Changing a filter applies it at once (the Apply button remains for keyboard users).
  form.querySelectorAll("select, input[type=checkbox]").forEach(function (select) {
    select.addEventListener("change", function () { form.requestSubmit(); });
  });

  function setNext(cursor) {
    if (!nextLink) return;
    if (cursor) {
      const page = new URLSearchParams(window.location.search);
      page.set("cursor", cursor);
      nextLink.href = "/?" + page.toString();
    }
    nextLink.hidden = !cursor;
  }

  function fillRow(row, job) {
    const shown = job.external_job_id || job.id;
    row.dataset.jobId = job.id;
    row.dataset.status = job.status;
    J.setBadge(row.querySelector(".badge"), job.status);
    const link = row.querySelector(".job-link");
    link.href = J.jobHref(shown);
    link.textContent = shown;
    J.setText(row, ".job-internal", job.external_job_id ? job.id : "");
    J.setText(row, ".job-type", job.job_type);
    J.setText(row, ".job-operation", job.operation);
    J.setBar(row.querySelector(".bar"), job.percent_complete, job.status);
    J.setText(row, ".pct", job.percent_complete + "%");
    const started = job.started_at || job.created_at;
    row.querySelector("time.started").setAttribute("datetime", started || "");
    const duration = row.querySelector(".duration");
    duration.dataset.start = started || "";
    duration.dataset.end = job.completed_at || "";
  }

  function render(jobs) {
    const existing = new Map();
    body.querySelectorAll("tr[data-job-id]").forEach(function (row) {
      existing.set(row.dataset.jobId, row);
    });
    jobs.forEach(function (job) {
      let row = existing.get(job.id);
      existing.delete(job.id);
      if (!row) row = J.clone("tpl-job-row");
      fillRow(row, job);
      body.appendChild(row); // moves existing rows into the new order
    });
    existing.forEach(function (row) { row.remove(); });
    empty.hidden = jobs.length > 0;
    tick();
  }

  function tick() {
    const now = Date.now();
    body.querySelectorAll("tr[data-job-id]").forEach(function (row) {
      const time = row.querySelector("time.started");
      const started = J.parseDate(time.getAttribute("datetime"));
      if (started) {
        time.textContent = J.relativeTime(started, now);
        time.title = started.toLocaleString();
      }
      const cell = row.querySelector(".duration");
      const start = J.parseDate(cell.dataset.start);
      const end = J.parseDate(cell.dataset.end);
      const running = !J.TERMINAL.has(row.dataset.status);
      if (start && (end || running)) {
        cell.textContent = J.formatDuration(((end ? end.getTime() : now) - start.getTime()) / 1000);
      } else {
        cell.textContent = "—";
      }
    });
  }

  let failures = 0;
  async function poll() {
    try {
      const response = await fetch(apiUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const data = await response.json();
      const jobs = Array.isArray(data.jobs) ? data.jobs : [];
      render(jobs.slice(0, Number(limit)));
      setNext(data.next_cursor);
      if (failures) state.textContent = "Live again.";
      failures = 0;
    } catch (error) {
      failures += 1;
      state.textContent = "Live updates paused: the API did not answer (" + error.message + "). Retrying…";
    }
    window.setTimeout(poll, failures ? Math.min(POLL_MS * (failures + 1), 15000) : POLL_MS);
  }

  tick();
  window.setInterval(tick, 1000);
  window.setTimeout(poll, POLL_MS);
})();
