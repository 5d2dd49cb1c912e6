/* joblog dashboard helpers shared by the jobs list and the job page.
   Data from the server is only ever written with textContent or attributes. */
(function () {
  "use strict";

  const TERMINAL = new Set(["completed", "failed", "cancelled"]);

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
    if (seconds < 0) seconds = 0;
    if (seconds < 10) return seconds.toFixed(1) + "s";
    const whole = Math.round(seconds);
    if (whole < 60) return whole + "s";
    const minutes = Math.floor(whole / 60);
    const secs = whole % 60;
    if (minutes < 60) return minutes + "m " + String(secs).padStart(2, "0") + "s";
    return Math.floor(minutes / 60) + "h " + String(minutes % 60).padStart(2, "0") + "m";
  }

  function relativeTime(date, now) {
    const seconds = Math.round(((now || Date.now()) - date.getTime()) / 1000);
    if (seconds < 5) return "just now";
    if (seconds < 60) return seconds + "s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }

  function parseDate(text) {
    if (!text) return null;
    const date = new Date(text);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  function clockTime(date) {
    return date.toLocaleTimeString(undefined, { hour12: false });
  }

  function setText(root, selector, text) {
    const node = root.querySelector(selector);
    if (node) node.textContent = text === null || text === undefined ? "" : String(text);
    return node;
  }

  function setBadge(node, status) {
    if (!node) return;
    node.dataset.status = status || "";
    node.textContent = status || "";
  }

  function setBar(bar, percent, status) {
    if (!bar) return;
    if (status !== undefined) bar.dataset.status = status || "";
    const value = Math.max(0, Math.min(100, Math.round(Number(percent) || 0)));
    bar.setAttribute("aria-valuenow", String(value));
    const fill = bar.querySelector(".bar-fill");
    if (fill) fill.style.width = value + "%";
  }

  function clone(templateId) {
    const template = document.getElementById(templateId);
    return template.content.firstElementChild.cloneNode(true);
  }

  function jobHref(id) {
    return "/jobs/" + encodeURIComponent(id);
  }

  window.joblog = {
    TERMINAL, formatDuration, relativeTime, parseDate, clockTime,
    setText, setBadge, setBar, clone, jobHref,
  };
})();
