// ModelGate UI: local times, sortable tables and a job's log tail. No dependencies.
(function () {
  "use strict";

  var dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  // <time datetime="ISO" title="... UTC"> shows the viewer's local time; UTC stays in the title.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        el.textContent = dateFormat.format(when);
      }
    });
  }

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    return cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
  }

  function compare(a, b, numeric) {
    if (numeric) {
      var x = parseFloat(a), y = parseFloat(b);
      if (isNaN(x) && isNaN(y)) return 0;
      if (isNaN(x)) return 1;
      if (isNaN(y)) return -1;
      return x - y;
    }
    return a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
  }

  // Click a header of a table.sortable to sort its rows; click again to reverse.
  function sortable(table) {
    var headers = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(headers, function (th, index) {
      th.tabIndex = 0;
      th.title = "Sort by " + th.textContent.trim();
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        var numeric = th.getAttribute("data-type") === "number";
        Array.prototype.forEach.call(headers, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        Array.prototype.forEach.call(table.tBodies, function (body) {
          var rows = Array.prototype.slice.call(body.rows);
          rows.sort(function (r1, r2) {
            var order = compare(cellValue(r1, index), cellValue(r2, index), numeric);
            return ascending ? order : -order;
          });
          rows.forEach(function (row) { body.appendChild(row); });
        });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  }

  // The job page's log: ask the JSON view for what follows `data-offset` every second,
  // append it, and show the job's state and progress, until the view says `complete`.
  var POLL_MS = 1000;
  var RETRY_MS = 5000;
  var LOG_KEEP_CHARS = 2 * 1024 * 1024;  // the page keeps the tail, not a whole huge log

  function followLog(box) {
    var url = box.getAttribute("data-log-url");
    var offset = parseInt(box.getAttribute("data-offset"), 10) || 0;
    var pre = box.querySelector("pre.log");
    var status = box.querySelector("[data-log-status]");
    var stateBox = document.querySelector("[data-job-state]");
    var badge = stateBox ? stateBox.querySelector(".badge") : null;
    var initialState = badge ? badge.textContent.trim() : "";
    var detail = document.querySelector("[data-job-state-detail]");
    var bar = document.querySelector("[data-job-progress]");
    var percent = document.querySelector("[data-job-percent]");
    var attempts = document.querySelector("[data-job-attempts]");

    function say(text) { if (status) status.textContent = text; }

    function append(text) {
      var atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
      pre.appendChild(document.createTextNode(text));
      if (pre.textContent.length > LOG_KEEP_CHARS) {
        pre.textContent = pre.textContent.slice(-LOG_KEEP_CHARS);
      }
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }

    function show(data) {
      var label = data.state.replace(/_/g, " ");
      if (badge) {
        badge.className = "badge status-" + data.state;
        badge.textContent = label;
      }
      if (detail) detail.textContent = data.state_detail || "";
      if (bar) bar.value = data.progress;
      if (percent) percent.textContent = Math.floor(Math.max(0, data.progress) * 100 + 1e-9) + "%";
      if (attempts) attempts.textContent = String(data.attempts);
      box.setAttribute("data-state", data.state);
    }

    function finished(data) {
      box.setAttribute("data-complete", "");
      document.querySelectorAll("[data-job-cancel], [data-job-stopping]").forEach(function (el) { el.remove(); });
      say("End of the log. ");
      if (data.state.replace(/_/g, " ") !== initialState) {
        var link = document.createElement("a");
        link.href = window.location.pathname;
        link.textContent = "Reload for its result, exit code and cost.";
        status.appendChild(document.createTextNode("The job has " + data.state + ". "));
        status.appendChild(link);
      }
    }

    function poll() {
      fetch(url + "?offset=" + offset, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" }
      })
        .then(function (response) {
          return response.json().catch(function () { return {}; }).then(function (data) {
            if (!response.ok) {
              var error = new Error(data.error || "HTTP " + response.status);
              error.status = response.status;
              throw error;
            }
            return data;
          });
        })
        .then(function (data) {
          if (data.text) append(data.text);
          offset = data.next_offset;
          box.setAttribute("data-offset", String(offset));
          show(data);
          if (data.complete) {
            finished(data);
            return;
          }
          say("Following the log: new lines appear as the job writes them.");
          window.setTimeout(poll, data.more ? 0 : POLL_MS);
        })
        .catch(function (error) {
          if (error.status === 401 || error.status === 403 || error.status === 404) {
            say("Stopped following the log: " + error.message + ".");
            return;
          }
          say("Could not read the log (" + error.message + "); trying again in a few seconds.");
          window.setTimeout(poll, RETRY_MS);
        });
    }

    if (!box.hasAttribute("data-complete")) {
      pre.scrollTop = pre.scrollHeight;
      window.setTimeout(poll, POLL_MS);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("table.sortable").forEach(sortable);
    document.querySelectorAll("[data-job-log]").forEach(followLog);
  });
})();
