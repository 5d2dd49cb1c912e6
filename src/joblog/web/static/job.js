/* One job's page: follows the job's Server-Sent Events stream (falling back to polling
   the summary) and updates the progress, steps, children, error, cancel request and log
   tail (job_log.js) in place; the cancel button asks the API to cancel the job. */
(function () {
  "use strict";
  const J = window.joblog;
  const root = document.getElementById("job-page");
  const cfg = root.dataset;
  const RULES = JSON.parse(document.getElementById("error-rules").textContent).map(function (rule) {
    return [new RegExp(rule[0], "i"), rule[1]];
  });

  const el = {
    status: root.querySelector("[data-testid=job-status]"),
    percent: root.querySelector("[data-testid=progress-percent]"),
    bar: root.querySelector(".progress-card .bar"),
    current: root.querySelector("[data-testid=current-step]"),
    elapsed: root.querySelector("[data-testid=elapsed]"),
    eta: root.querySelector("[data-testid=eta]"),
    stepCount: root.querySelector("[data-testid=step-count]"),
    steps: root.querySelector("[data-testid=steps]"),
    stepsEmpty: root.querySelector("[data-testid=steps-empty]"),
    childrenCard: root.querySelector("[data-testid=children-card]"),
    children: root.querySelector("[data-testid=children]"),
    error: root.querySelector("[data-testid=job-error]"),
    started: root.querySelector("[data-testid=started]"),
    cancelBox: root.querySelector("[data-testid=cancel-box]"),
    cancelButton: root.querySelector("[data-testid=cancel-button]"),
    cancelConfirm: root.querySelector("[data-testid=cancel-confirm]"),
    cancelYes: root.querySelector("[data-testid=cancel-yes]"),
    cancelNo: root.querySelector("[data-testid=cancel-no]"),
    cancelState: root.querySelector("[data-testid=cancel-state]"),
  };
  const log = J.JobLog(root);

  // Timing: the server's elapsed/eta at a moment, extrapolated by the local clock.
  const timing = { elapsed: num(cfg.elapsed), eta: num(cfg.eta), at: Date.now(), offset: 0 };
  let status = cfg.status;
  let ended = J.TERMINAL.has(status);
  let cancelRequested = cfg.cancelRequested === "true";

  function num(text) {
    if (text === "" || text === undefined || text === null) return null;
    const value = Number(text);
    return Number.isNaN(value) ? null : value;
  }

  function serverNow() { return Date.now() + timing.offset; }

  function syncClock(startedIso, elapsed) {
    // The page's clock may differ from the server's; started + elapsed is "server now".
    const started = J.parseDate(startedIso);
    if (started && elapsed !== null && !ended) {
      timing.offset = started.getTime() + elapsed * 1000 - Date.now();
    }
  }

  // -- status, progress, timing ---------------------------------------------------------------

  function setStatus(value) {
    status = value;
    root.dataset.status = value;
    el.bar.dataset.status = value;
    J.setBadge(el.status, value);
    if (J.TERMINAL.has(value)) ended = true;
    renderCancel();
  }

  function setProgress(percent, progress) {
    const value = Math.round(Number(percent) || 0);
    J.setBar(el.bar, value);
    el.percent.textContent = value + "%";
    if (progress) {
      el.stepCount.textContent = progress.completed_steps + " of " + progress.planned_steps;
      el.current.textContent = "";
      if (progress.current_step) {
        el.current.append("Now: ");
        const strong = document.createElement("strong");
        strong.textContent = progress.current_step;
        el.current.append(strong);
      } else {
        const ended = { completed: "Finished", failed: "Failed", cancelled: "Cancelled" };
        el.current.textContent = ended[status] || "Waiting for the next step";
      }
    }
  }

  function setTiming(elapsed, eta) {
    timing.elapsed = elapsed === undefined ? timing.elapsed : elapsed;
    timing.eta = eta === undefined ? timing.eta : eta;
    timing.at = Date.now();
    tick();
  }

  function tick() {
    const since = ended ? 0 : (Date.now() - timing.at) / 1000;
    el.elapsed.textContent = timing.elapsed === null ? "—" : J.formatDuration(timing.elapsed + since);
    if (ended) {
      el.eta.textContent = "done";
    } else if (timing.eta === null) {
      el.eta.textContent = "estimating…";
    } else {
      const left = timing.eta - since;
      el.eta.textContent = left < 1 ? "any moment now" : "about " + J.formatDuration(left) + " left";
    }
    const now = serverNow();
    el.steps.querySelectorAll("li[data-status=running]").forEach(function (li) {
      const started = J.parseDate(li.dataset.started);
      if (started) {
        li.querySelector(".step-duration").textContent =
          J.formatDuration(Math.max(now - started.getTime(), 0) / 1000);
      }
    });
  }

  // -- steps ----------------------------------------------------------------------------------

  function fillStep(li, step) {
    li.dataset.status = step.status;
    li.dataset.stepId = step.id === null || step.id === undefined ? "" : String(step.id);
    li.dataset.stepName = step.name;
    li.dataset.started = step.started_at || "";
    li.dataset.completed = step.completed_at || "";
    J.setText(li, ".step-name", step.name);
    J.setText(li, ".step-status", step.status);
    J.setText(li, ".step-note", step.error_message || "");
    const duration = step.duration_seconds;
    J.setText(li, ".step-duration",
      duration === null || duration === undefined ? "" : J.formatDuration(duration));
    if (step.status === "running") li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
  }

  function renderSteps(steps) {
    el.steps.replaceChildren();
    steps.forEach(function (step) {
      const li = J.clone("tpl-step");
      fillStep(li, step);
      el.steps.appendChild(li);
    });
    el.stepsEmpty.hidden = steps.length > 0;
  }

  function upsertStep(step) {
    let li = null;
    if (step.id !== null && step.id !== undefined) {
      li = el.steps.querySelector('li[data-step-id="' + CSS.escape(String(step.id)) + '"]');
    }
    if (!li) {
      // A planned step that just started replaces its greyed placeholder.
      li = Array.from(el.steps.querySelectorAll("li[data-status=pending]")).find(function (node) {
        return node.dataset.stepName === step.name && !node.dataset.stepId;
      }) || null;
    }
    if (!li) {
      li = J.clone("tpl-step");
      const firstPending = el.steps.querySelector("li[data-status=pending]:not([data-step-id]), li[data-status=pending][data-step-id='']");
      el.steps.insertBefore(li, firstPending);
    }
    fillStep(li, step);
    el.stepsEmpty.hidden = true;
    tick();
  }

  // -- children -------------------------------------------------------------------------------

  function fillChild(li, child) {
    li.dataset.childId = child.id;
    li.dataset.status = child.status;
    const link = li.querySelector(".child-link");
    link.href = J.jobHref(child.id);
    link.textContent = child.external_job_id || child.operation;
    J.setBadge(li.querySelector(".badge"), child.status);
    J.setBar(li.querySelector(".bar"), child.percent_complete, child.status);
    J.setText(li, ".pct", child.percent_complete + "%");
  }

  function upsertChild(child) {
    let li = el.children.querySelector('li[data-child-id="' + CSS.escape(child.id) + '"]');
    if (!li) {
      li = J.clone("tpl-child");
      el.children.appendChild(li);
    }
    fillChild(li, child);
    el.childrenCard.hidden = false;
  }

  // -- error ----------------------------------------------------------------------------------

  function readableError(raw) {
    const failed = Array.from(el.steps.querySelectorAll("li[data-status=failed]"));
    const name = failed.length ? failed[0].dataset.stepName : null;
    const where = name ? "The job failed during step " + name + "." : "The job failed.";
    const rule = RULES.find(function (r) { return raw && r[0].test(raw); });
    return rule ? where + " " + rule[1] : where;
  }

  function setError(jobStatus, raw) {
    if (jobStatus !== "failed") {
      el.error.hidden = true;
      return;
    }
    J.setText(el.error, "[data-testid=error-readable]", readableError(raw || ""));
    J.setText(el.error, "[data-testid=error-raw]", raw || "(no error text was recorded)");
    el.error.hidden = false;
  }

  // -- cancel -----------------------------------------------------------------------------

  const CANCEL_REQUESTED = "Cancel requested: waiting for the job to stop.";
  const CANCEL_REFUSED = {
    401: "Your sign-in has ended: sign in again to cancel.",
    404: "There is no job row here to cancel.",
    409: "The job has already ended.",
  };

  function renderCancel(message) {
    if (!el.cancelBox) return;
    if (ended) {
      el.cancelBox.hidden = true;
      return;
    }
    const asking = el.cancelConfirm && !el.cancelConfirm.hidden;
    if (el.cancelButton) el.cancelButton.hidden = cancelRequested || asking;
    if (el.cancelConfirm && cancelRequested) el.cancelConfirm.hidden = true;
    if (message !== undefined) el.cancelState.textContent = message;
    else if (cancelRequested) el.cancelState.textContent = CANCEL_REQUESTED;
  }

  function setCancelRequested(value) {
    if (value && !cancelRequested) {
      cancelRequested = true;
      renderCancel();
    }
  }

  async function refreshOnce() {
    try {
      const response = await fetch(cfg.summaryUrl, { headers: { Accept: "application/json" } });
      if (response.ok) applySummary(await response.json());
    } catch (error) { /* the stream still follows the job */ }
  }

  async function requestCancel() {
    el.cancelYes.disabled = true;
    let message;
    try {
      const response = await fetch(cfg.cancelUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": cfg.csrf },
      });
      if (response.status === 202) {
        const job = await response.json();
        setCancelRequested(Boolean(job.cancel_requested));
      } else {
        let detail = "";
        try { detail = (await response.json()).detail || ""; } catch (error) { /* not JSON */ }
        message = CANCEL_REFUSED[response.status] ||
          "Not cancelled: " + (typeof detail === "string" && detail ? detail : "the server answered " + response.status) + ".";
        if (response.status === 409) refreshOnce();
      }
    } catch (error) {
      message = "The server could not be reached: the job was not cancelled.";
    }
    el.cancelYes.disabled = false;
    el.cancelConfirm.hidden = true;
    renderCancel(message);
  }

  if (el.cancelButton) {
    el.cancelButton.addEventListener("click", function () {
      el.cancelConfirm.hidden = false;
      renderCancel("");
      el.cancelNo.focus();
    });
    el.cancelNo.addEventListener("click", function () {
      el.cancelConfirm.hidden = true;
      renderCancel();
      el.cancelButton.focus();
    });
    el.cancelYes.addEventListener("click", requestCancel);
  }

  // -- whole summaries (stream snapshot or polling) -------------------------------------------

  function applySummary(summary) {
    const job = summary.job;
    setStatus(job.status);
    renderSteps(summary.steps || []);
    setProgress(summary.progress ? summary.progress.percent : job.percent_complete, summary.progress);
    syncClock(job.started_at || job.created_at, summary.elapsed_seconds);
    setTiming(summary.elapsed_seconds, summary.eta_seconds);
    (summary.children || []).forEach(upsertChild);
    (summary.recent_events || []).forEach(log.append);
    setError(job.status, job.error_message);
    setCancelRequested(job.cancel_requested);
  }

  let pollTimer = null;
  async function poll() {
    try {
      const response = await fetch(cfg.summaryUrl, { headers: { Accept: "application/json" } });
      if (response.ok) applySummary(await response.json());
    } catch (error) { /* try again on the next round */ }
    if (!ended) pollTimer = window.setTimeout(poll, 2000);
  }

  function follow() {
    if (!window.EventSource) { poll(); return; }
    const source = new EventSource(cfg.streamUrl);
    let failures = 0;
    const on = function (name, handler) {
      source.addEventListener(name, function (message) {
        failures = 0;
        handler(JSON.parse(message.data));
      });
    };
    on("snapshot", applySummary);
    on("progress", function (data) {
      setStatus(data.status);
      setProgress(data.percent, data.progress);
      setTiming(data.elapsed_seconds, data.eta_seconds);
      setError(data.status, data.error_message);
      setCancelRequested(data.cancel_requested);
    });
    on("step", upsertStep);
    on("log", log.append);
    on("child", upsertChild);
    on("end", function (data) {
      source.close();
      setStatus(data.status);
      setError(data.status, data.error_message);
      tick();
      poll(); // one last full summary: final durations and percent
    });
    source.onerror = function () {
      failures += 1;
      // CLOSED: the server refused the stream (e.g. no API); keep the page live by polling.
      if (source.readyState === EventSource.CLOSED || failures > 5) {
        source.close();
        if (!ended && pollTimer === null) poll();
      }
    };
  }

  const started = J.parseDate(el.started.getAttribute("datetime"));
  if (started) {
    el.started.textContent = J.relativeTime(started) + " · " + J.clockTime(started);
    el.started.title = started.toLocaleString();
  }
  syncClock(cfg.started, timing.elapsed);
  renderCancel();
  tick();
  window.setInterval(tick, 1000);
  if (!ended) follow();
})();
