/* The run browser (/browse): every video of the runs with its prompt and scores, sortable, filterable, and
 * two methods' videos of one prompt side by side.
 *
 * Stable hooks for browser tests:
 *   body[data-state]                 "loading" | "ready" (a query finished and the table shows it) | "error"
 *   #filter-prompt, #filter-method   prompt text filter (case-insensitive substring) and method filter
 *   #videos-head                     header cells: button[data-sort="<column>"] (data-testid="sort-<column>"),
 *                                    aria-sort = ascending | descending on the active one; columns
 *                                    "method", "prompt" and every score column
 *   #videos                          tbody: one tr per video, data-testid="row", data-id, data-method,
 *                                    data-prompt; td[data-column="<score column>"] hold the scores;
 *                                    button[data-testid="compare-row"] opens the compare view for its prompt
 *   #count, #page-info, #prev, #next the number of matching videos and paging (50 per page)
 *   #compare                         compare view: #compare-prompt, #compare-a, #compare-b, #compare-go,
 *                                    #compare-close, #compare-title, #compare-video-a, #compare-video-b,
 *                                    #compare-label-a/-b, #compare-scores-a/-b, #compare-play, #compare-seek
 */
(function () {
  "use strict";
  var PAGE = 50;
  var query = { sort: "", order: "asc", q: "", method: "", offset: 0 };
  var columns = [], methods = [], total = 0, player = null, generation = 0;

  function $(id) { return document.getElementById(id); }
  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = text; }
    if (className) { node.className = className; }
    return node;
  }
  function fmt(value) {
    if (value === null || value === undefined) { return "\u2013"; }
    return Math.abs(value) >= 1000 || value === Math.round(value) ? String(value) : value.toFixed(4);
  }
  function showError(message) {
    $("error").textContent = message || "";
    $("error").classList.toggle("hidden", !message);
  }
  function getJSON(url) {
    return fetch(url, { headers: { "Accept": "application/json" } }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) { throw new Error(data.error || ("status " + response.status)); }
        return data;
      });
    });
  }

  function header() {
    var row = $("videos-head");
    row.textContent = "";
    row.appendChild(el("th", "Video"));
    ["method", "prompt"].concat(columns).forEach(function (column) {
      var th = el("th"), button = el("button", column);
      button.type = "button";
      button.dataset.sort = column;
      button.setAttribute("data-testid", "sort-" + column);
      if (query.sort === column) { button.setAttribute("aria-sort", query.order === "asc" ? "ascending" : "descending"); }
      button.addEventListener("click", function () {
        if (query.sort === column) { query.order = query.order === "asc" ? "desc" : "asc"; }
        else { query.sort = column; query.order = "asc"; }
        query.offset = 0;
        load();
      });
      th.appendChild(button);
      row.appendChild(th);
    });
    row.appendChild(el("th", ""));
  }

  function fillMethods(select, keep, withAll) {
    var value = select.value;
    select.textContent = "";
    if (withAll) { select.appendChild(el("option", "All methods")).value = ""; }
    methods.forEach(function (m) { select.appendChild(el("option", m)).value = m; });
    if (keep) { select.value = value; }
  }

  function rowFor(video) {
    var tr = el("tr");
    tr.setAttribute("data-testid", "row");
    tr.dataset.id = video.id;
    tr.dataset.method = video.method;
    tr.dataset.prompt = video.prompt;
    var clip = el("video");
    clip.muted = true; clip.loop = true; clip.preload = "metadata"; clip.playsInline = true;
    clip.src = video.video;
    clip.addEventListener("mouseenter", function () { var p = clip.play(); if (p && p.catch) { p.catch(function () {}); } });
    clip.addEventListener("mouseleave", function () { clip.pause(); });
    var td = el("td");
    td.appendChild(clip);
    tr.appendChild(td);
    tr.appendChild(el("td", video.method));
    tr.appendChild(el("td", video.prompt));
    columns.forEach(function (column) {
      var cell = el("td", fmt(video.scores[column]), "num");
      cell.dataset.column = column;
      tr.appendChild(cell);
    });
    var action = el("td"), button = el("button", "Compare");
    button.type = "button";
    button.setAttribute("data-testid", "compare-row");
    button.addEventListener("click", function () {
      var other = methods.filter(function (m) { return m !== video.method; })[0] || video.method;
      openCompare(video.prompt, video.method, other);
    });
    action.appendChild(button);
    tr.appendChild(action);
    return tr;
  }

  function load() {
    var mine = ++generation;
    document.body.dataset.state = "loading";
    var params = new URLSearchParams({ order: query.order, q: query.q, limit: String(PAGE), offset: String(query.offset) });
    if (query.sort) { params.set("sort", query.sort); }
    if (query.method) { params.set("method", query.method); }
    getJSON("/api/browse/videos?" + params.toString()).then(function (data) {
      if (mine !== generation) { return; } // an older query answered late
      var first = columns.length === 0 && methods.length === 0;
      columns = data.columns; methods = data.methods; total = data.total;
      if (first) {
        fillMethods($("filter-method"), true, true);
        fillMethods($("compare-a"), false, false);
        fillMethods($("compare-b"), false, false);
        if (methods.length > 1) { $("compare-b").value = methods[1]; }
      }
      header();
      var body = $("videos");
      body.textContent = "";
      data.rows.forEach(function (video) { body.appendChild(rowFor(video)); });
      $("count").textContent = total + (total === 1 ? " video" : " videos");
      var last = Math.min(total, query.offset + data.rows.length);
      $("page-info").textContent = total ? (query.offset + 1) + "\u2013" + last + " of " + total : "no videos match";
      $("prev").disabled = query.offset === 0;
      $("next").disabled = last >= total;
      showError("");
      document.body.dataset.state = "ready";
    }).catch(function (error) {
      if (mine !== generation) { return; }
      showError("Cannot load the videos: " + error.message);
      document.body.dataset.state = "error";
    });
  }

  function scoresText(video) {
    return columns.map(function (c) { return c + " " + fmt(video.scores[c]); }).join(" \u00b7 ");
  }

  function openCompare(prompt, a, b) {
    $("compare").classList.remove("hidden");
    $("compare-prompt").value = prompt;
    $("compare-a").value = a;
    $("compare-b").value = b;
    compare();
    window.scrollTo(0, 0);
  }

  function compare() {
    var params = new URLSearchParams({ prompt: $("compare-prompt").value, a: $("compare-a").value, b: $("compare-b").value });
    getJSON("/api/browse/compare?" + params.toString()).then(function (data) {
      var a = data.a.videos[0], b = data.b.videos[0];
      $("compare-title").textContent = data.prompt;
      $("compare-label-a").textContent = data.a.method + (a ? "" : " (no video)");
      $("compare-label-b").textContent = data.b.method + (b ? "" : " (no video)");
      $("compare-scores-a").textContent = a ? scoresText(a) : "";
      $("compare-scores-b").textContent = b ? scoresText(b) : "";
      player.load([a ? a.video : "", b ? b.video : ""]);
      showError("");
    }).catch(function (error) { showError("Cannot compare: " + error.message); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    player = window.vbenchPlayer.sync({
      videos: [$("compare-video-a"), $("compare-video-b")], play: $("compare-play"), seek: $("compare-seek"), time: $("compare-time")
    });
    var typing = null;
    $("filter-prompt").addEventListener("input", function () {
      window.clearTimeout(typing);
      typing = window.setTimeout(function () { query.q = $("filter-prompt").value; query.offset = 0; load(); }, 200);
    });
    $("filter-method").addEventListener("change", function () { query.method = $("filter-method").value; query.offset = 0; load(); });
    $("prev").addEventListener("click", function () { query.offset = Math.max(0, query.offset - PAGE); load(); });
    $("next").addEventListener("click", function () { query.offset += PAGE; load(); });
    $("open-compare").addEventListener("click", function () { $("compare").classList.remove("hidden"); });
    $("compare-go").addEventListener("click", compare);
    $("compare-close").addEventListener("click", function () { player.pause(); $("compare").classList.add("hidden"); });
    getJSON("/api/browse/prompts").then(function (data) {
      var list = $("prompt-list");
      data.prompts.forEach(function (p) { list.appendChild(el("option")).value = p; });
    }).catch(function () {});
    load();
  });
}());
