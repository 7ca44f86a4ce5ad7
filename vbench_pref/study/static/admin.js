/* The admin page (/admin/<token>): progress per participant, polled from /api/admin/<token>/progress.
 *
 * Stable hooks for browser tests:
 *   body[data-state]          "loading" | "ready" | "error"
 *   #study-id, #summary       the study id and "answered / total" over all participants
 *   #participants             tbody: one tr per participant, data-testid="participant-<id>", cells with
 *                             data-field = id | answered | progress | last_answered | failed_checks
 *   #updated                  time of the last refresh; #error a message when a refresh failed
 */
(function () {
  "use strict";
  var POLL_MS = 3000;
  var token = decodeURIComponent(window.location.pathname.split("/")[2] || "");
  var url = "/api/admin/" + encodeURIComponent(token) + "/progress";

  function $(id) { return document.getElementById(id); }

  function cell(row, field, text, className) {
    var td = document.createElement("td");
    td.dataset.field = field;
    if (className) { td.className = className; }
    if (text !== null) { td.textContent = text; }
    row.appendChild(td);
    return td;
  }

  function render(data) {
    $("study-id").textContent = data.study_id;
    $("summary").textContent = data.answered + " / " + data.total + " answered";
    $("total-bar").max = Math.max(1, data.total);
    $("total-bar").value = data.answered;
    var body = $("participants");
    body.textContent = "";
    data.participants.forEach(function (p) {
      var row = document.createElement("tr");
      row.setAttribute("data-testid", "participant-" + p.id);
      cell(row, "id", p.id);
      cell(row, "answered", p.answered + " / " + p.total, "num");
      var meter = document.createElement("div"), fill = document.createElement("div");
      meter.className = "meter";
      fill.style.width = (p.total ? 100 * p.answered / p.total : 0) + "%";
      meter.appendChild(fill);
      cell(row, "progress", null).appendChild(meter);
      cell(row, "last_answered", p.last_answered ? new Date(p.last_answered).toLocaleString() : "\u2013");
      cell(row, "failed_checks", String(p.failed_checks), "num");
      body.appendChild(row);
    });
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    $("error").classList.add("hidden");
    document.body.dataset.state = "ready";
  }

  function refresh() {
    fetch(url, { headers: { "Accept": "application/json" }, cache: "no-store" }).then(function (response) {
      if (!response.ok) { throw new Error("status " + response.status); }
      return response.json();
    }).then(render).catch(function (error) {
      $("error").textContent = "Cannot refresh: " + error.message;
      $("error").classList.remove("hidden");
      if (document.body.dataset.state === "loading") { document.body.dataset.state = "error"; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    refresh();
    window.setInterval(refresh, POLL_MS);
  });
}());
