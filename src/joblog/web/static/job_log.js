/* One job's log on its page: the live tail, and search, level and trace filters, older
   pages and the download link, all through the log API (contains, min_level, trace_id,
   before_id). The page's filters are in its URL, so a filtered log is a link.
   Data from the server is only ever written with textContent or attributes. */
(function () {
  "use strict";
  const J = window.joblog;
  const LEVELS = ["DEBUG", "INFO", "WARN", "ERROR"];
  // before_id above every ID: the newest page (IDs are BIGINT; a string, as JS numbers round).
  const NEWEST = "9223372036854775807";
  const BROKEN_TEXT = "The search holds a broken character (an unpaired surrogate): remove it and search again.";

  function attrsPreview(attrs) {
    const text = Object.keys(attrs).map(function (key) {
      const value = attrs[key];
      return key + "=" + (typeof value === "object" ? JSON.stringify(value) : String(value));
    }).join(" ");
    return text.length <= 140 ? text : text.slice(0, 139) + "…";
  }

  function Refused(message) { this.message = message; }

  async function explain(response) {
    // The API's own words: {"detail": [{"loc": [..., name], "msg": ...}]} or {"detail": "..."}.
    try {
      const body = await response.json();
      if (Array.isArray(body.detail) && body.detail.length) {
        return body.detail.map(function (item) {
          const loc = Array.isArray(item.loc) ? item.loc[item.loc.length - 1] : "";
          return (loc ? loc + ": " : "") + item.msg;
        }).join("; ");
      }
      if (typeof body.detail === "string") return body.detail;
      if (body.error) return String(body.error).replace(/_/g, " ");
    } catch (error) { /* not JSON */ }
    return "the server answered " + response.status;
  }

  async function getJson(url) {
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    } catch (error) {
      throw new Refused("The server could not be reached; try again.");
    }
    if (!response.ok) throw new Refused("Search refused: " + await explain(response) + ".");
    return response.json();
  }

  function JobLog(root, onError) {
    const cfg = root.dataset;
    const $ = function (id) { return root.querySelector("[data-testid=" + id + "]"); };
    const list = $("log-tail");
    const empty = $("log-empty");
    const form = $("log-search-form");
    const input = $("log-search");
    const download = $("log-download");
    const traceBox = $("trace-filter");
    const notice = $("log-notice");
    const older = $("log-older");
    const legacy = cfg.legacy === "true";
    const pageSize = Number(cfg.logPage) || 100;
    let state = { level: cfg.logLevel || "DEBUG", contains: cfg.logContains || "", trace: cfg.logTrace || "" };
    let more = cfg.moreOlder === "true";
    let generation = 0;

    function levelOk(level, filter) {
      return LEVELS.indexOf(level) >= LEVELS.indexOf(filter.level);
    }

    function matches(event, filter) {
      if (!levelOk(event.level, filter)) return false;
      if (filter.trace && event.trace_id !== filter.trace) return false;
      if (filter.contains) {
        // The API's match is case-insensitive too (for live events arriving meanwhile).
        const message = String(event.message).toLowerCase();
        if (message.indexOf(filter.contains.toLowerCase()) < 0) return false;
      }
      return true;
    }

    /* The filter as a query string; throws URIError for text with a lone surrogate. */
    function query(filter, extra) {
      const parts = [];
      if (filter.contains) parts.push("contains=" + encodeURIComponent(filter.contains));
      if (filter.trace) parts.push("trace_id=" + encodeURIComponent(filter.trace));
      if (filter.level !== "DEBUG") parts.push("min_level=" + encodeURIComponent(filter.level));
      Object.keys(extra || {}).forEach(function (key) {
        parts.push(key + "=" + encodeURIComponent(extra[key]));
      });
      return parts.join("&");
    }

    function say(text) {
      if (!notice) { if (text && onError) onError(text); return; }
      notice.textContent = text || "";
      notice.hidden = !text;
    }

    function fillRow(li, event) {
      li.dataset.eventId = String(event.id);
      li.dataset.level = event.level;
      const time = li.querySelector("time");
      time.setAttribute("datetime", event.ts || "");
      const ts = J.parseDate(event.ts);
      time.textContent = ts ? J.clockTime(ts) : "";
      J.setText(li, ".log-level", event.level);
      J.setText(li, ".log-msg", event.message);
      const trace = li.querySelector(".log-trace");
      if (event.trace_id) {
        trace.dataset.traceId = event.trace_id;
        trace.href = "?trace_id=" + encodeURIComponent(event.trace_id);
        trace.title = "Only the events of trace " + event.trace_id;
        trace.textContent = "trace " + event.trace_id.slice(0, 8);
        trace.hidden = false;
      } else {
        trace.hidden = true;
      }
      const attrs = Object.assign({}, event.attrs || {});
      delete attrs.logger;
      const details = li.querySelector("details");
      if (Object.keys(attrs).length) {
        J.setText(details, ".attrs-preview", attrsPreview(attrs));
        J.setText(details, "pre", JSON.stringify(attrs, null, 2));
        details.hidden = false;
      } else {
        details.hidden = true;
      }
      return li;
    }

    function row(event) { return fillRow(J.clone("tpl-log"), event); }

    function shown(id) {
      return list.querySelector('li[data-event-id="' + CSS.escape(String(id)) + '"]') !== null;
    }

    function setMore(value) {
      more = value;
      if (older) older.hidden = !more;
    }

    function updateEmpty() {
      const filtered = state.contains || state.trace || state.level !== "DEBUG";
      empty.hidden = list.children.length > 0;
      if (!legacy) empty.textContent = filtered ? "No log events match." : "No log events yet.";
    }

    /* A live event (stream or summary): shown if the filter takes it, in ID order. */
    function append(event) {
      if (legacy || !matches(event, state) || shown(event.id)) return;
      const first = list.firstElementChild;
      // Older than the oldest shown while older pages exist: it belongs to one of those.
      if (more && first && Number(event.id) < Number(first.dataset.eventId)) return;
      const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      const later = Array.from(list.children).find(function (node) {
        return Number(node.dataset.eventId) > Number(event.id);
      });
      list.insertBefore(row(event), later || null);
      updateEmpty();
      if (atBottom) list.scrollTop = list.scrollHeight;
    }

    function syncControls() {
      root.querySelectorAll(".level-filter button").forEach(function (button) {
        button.setAttribute("aria-pressed", String(button.dataset.level === state.level));
      });
      if (traceBox) {
        traceBox.hidden = !state.trace;
        J.setText(traceBox, "[data-testid=trace-filter-id]", state.trace);
      }
      if (download) {
        const filters = query(state);
        download.href = cfg.logsUrl + "?format=ndjson" + (filters ? "&" + filters : "");
        download.textContent = filters ? "Download matches (NDJSON)" : "Download NDJSON";
      }
      if (input && document.activeElement !== input) input.value = state.contains;
      const filters = query(state);
      const url = window.location.pathname + (filters ? "?" + filters : "");
      if (url !== window.location.pathname + window.location.search) {
        window.history.replaceState(null, "", url);
      }
    }

    /* Show the newest page under a new filter; the filter holds only once the API took it. */
    async function apply(changes) {
      const next = Object.assign({}, state, changes);
      let url;
      try {
        url = cfg.logsUrl + "?" + query(next, { before_id: NEWEST, limit: pageSize });
      } catch (error) {
        say(BROKEN_TEXT);
        return;
      }
      const mine = ++generation;
      // At once, what the new level hides; the API's page follows.
      list.querySelectorAll("li.log").forEach(function (li) {
        li.hidden = !levelOk(li.dataset.level, next);
      });
      try {
        const data = await getJson(url);
        if (mine !== generation) return;
        state = next;
        say("");
        list.replaceChildren.apply(list, (data.events || []).map(row));
        setMore(data.next_before_id !== null && data.next_before_id !== undefined);
        updateEmpty();
        list.scrollTop = list.scrollHeight;
      } catch (error) {
        if (mine !== generation) return;
        list.querySelectorAll("li.log").forEach(function (li) { li.hidden = false; });
        say(error instanceof Refused ? error.message : String(error));
      }
      syncControls();
    }

    async function loadOlder() {
      const first = list.firstElementChild;
      if (!first) { setMore(false); return; }
      const mine = generation;
      older.disabled = true;
      try {
        const data = await getJson(cfg.logsUrl + "?" + query(state, { before_id: first.dataset.eventId, limit: pageSize }));
        if (mine !== generation) return;
        const height = list.scrollHeight;
        const top = list.scrollTop;
        const rows = (data.events || []).filter(function (event) { return !shown(event.id); }).map(row);
        list.prepend.apply(list, rows);
        list.scrollTop = top + (list.scrollHeight - height); // keep what the reader looked at
        setMore(data.next_before_id !== null && data.next_before_id !== undefined);
        updateEmpty();
        say("");
      } catch (error) {
        say(error instanceof Refused ? error.message : String(error));
      } finally {
        older.disabled = false;
      }
    }

    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        apply({ contains: input.value });
      });
    }
    if (older) older.addEventListener("click", loadOlder);
    root.querySelectorAll(".level-filter button").forEach(function (button) {
      button.addEventListener("click", function () { apply({ level: button.dataset.level }); });
    });
    const plainClick = function (event) {
      return event.button === 0 && !event.ctrlKey && !event.metaKey && !event.shiftKey && !event.altKey;
    };
    list.addEventListener("click", function (event) {
      const link = event.target.closest("a.log-trace");
      if (!link || !plainClick(event)) return;
      event.preventDefault();
      apply({ trace: link.dataset.traceId });
    });
    if (traceBox) {
      traceBox.querySelector("[data-testid=trace-filter-clear]").addEventListener("click", function (event) {
        if (!plainClick(event)) return;
        event.preventDefault();
        apply({ trace: "" });
      });
    }
    // Local times for the server-rendered UTC clocks.
    list.querySelectorAll("time[datetime]").forEach(function (time) {
      const date = J.parseDate(time.getAttribute("datetime"));
      if (date) time.textContent = J.clockTime(date);
    });
    syncControls();
    list.scrollTop = list.scrollHeight;

    return { append: append };
  }

  J.JobLog = JobLog;
})();
