/* The participant page (/s/<token>): shows the next pair, collects one answer per aspect, posts them.
 *
 * Stable hooks for browser tests:
 *   body[data-state]            "loading" | "item" | "submitting" | "finished" | "error"
 *   #item[data-item-id]         the id of the item on screen; #item[data-position] its 1-based position
 *   #prompt                     the prompt text
 *   #video-left, #video-right   the two videos (A left, B right); data-ready="true" once playable
 *   #play, #seek, #time         the shared play/pause button, seek bar (0..1000) and time display
 *   #progress-text, #progress-bar   "answered / total" and its bar
 *   #questions                  one fieldset per aspect: data-testid="aspect-<key>", class "current" on
 *                               the one the keyboard answers
 *   input#answer-<key>-<value>  the radio buttons (value: left | tie | right), data-testid the same
 *   #submit                     enabled once every aspect is answered, disabled while a request is in flight
 *   #status, #error             messages; #thanks the final screen
 * Keys: 1/a, 2/t, 3/b answer the current question; arrows up/down change it; space plays/pauses; arrows
 * left/right step; Enter submits.
 */
(function () {
  "use strict";
  var token = decodeURIComponent(window.location.pathname.split("/")[2] || "");
  var api = "/api/s/" + encodeURIComponent(token);
  var CHOICES = ["left", "tie", "right"];
  var LABELS = {
    abc: { left: "A better", tie: "Tie", right: "B better" },
    gsb: { left: "Left (A) better", tie: "Same", right: "Right (B) better" }
  };
  var KEYS = { "1": "left", "a": "left", "2": "tie", "t": "tie", "3": "right", "b": "right" };
  var state = null, current = 0, shownAt = 0, busy = false, player = null;

  function $(id) { return document.getElementById(id); }
  function setPage(name) { document.body.dataset.state = name; }

  function showError(message) {
    $("error").textContent = message;
    $("error").classList.toggle("hidden", !message);
  }

  function showProgress(s) {
    $("progress-text").textContent = s.answered + " / " + s.total;
    $("progress-bar").max = Math.max(1, s.total);
    $("progress-bar").value = s.answered;
  }

  function buildQuestions(s) {
    var box = $("questions"), labels = LABELS[s.mode] || LABELS.abc;
    box.textContent = "";
    s.aspects.forEach(function (aspect, index) {
      var set = document.createElement("fieldset");
      set.className = "question";
      set.setAttribute("data-testid", "aspect-" + aspect.key);
      set.dataset.aspect = aspect.key;
      var legend = document.createElement("legend");
      legend.textContent = (index + 1) + ". " + aspect.title;
      var ask = document.createElement("p");
      ask.className = "ask";
      ask.textContent = aspect.question;
      var choices = document.createElement("div");
      choices.className = "choices";
      CHOICES.forEach(function (value) {
        var label = document.createElement("label"), input = document.createElement("input");
        input.type = "radio";
        input.name = aspect.key;
        input.value = value;
        input.id = "answer-" + aspect.key + "-" + value;
        input.setAttribute("data-testid", input.id);
        input.addEventListener("change", function () { current = index; answered(); });
        label.appendChild(input);
        label.appendChild(document.createTextNode(labels[value]));
        choices.appendChild(label);
      });
      set.addEventListener("click", function () { current = index; highlight(); });
      set.appendChild(legend);
      set.appendChild(ask);
      set.appendChild(choices);
      box.appendChild(set);
    });
  }

  function answers() {
    var out = {}, complete = true;
    state.aspects.forEach(function (aspect) {
      var checked = document.querySelector("input[name='" + aspect.key + "']:checked");
      if (checked) { out[aspect.key] = checked.value; } else { complete = false; }
    });
    return complete ? out : null;
  }

  function highlight() {
    Array.prototype.forEach.call($("questions").children, function (set, i) {
      set.classList.toggle("current", i === current);
    });
  }

  function answered() {
    $("submit").disabled = busy || answers() === null;
    // move on to the next unanswered question, so that a participant can answer with three key presses
    var sets = $("questions").children;
    for (var k = 1; k <= sets.length; k++) {
      var i = (current + k) % sets.length;
      if (!sets[i].querySelector("input:checked")) { current = i; break; }
    }
    highlight();
  }

  function render(s) {
    state = s;
    showProgress(s);
    if (!s.item) {
      if (player) { player.pause(); }
      $("item").classList.add("hidden");
      $("thanks").classList.remove("hidden");
      setPage("finished");
      return;
    }
    buildQuestions(s);
    current = 0;
    highlight();
    $("item").dataset.itemId = s.item.id;
    $("item").dataset.position = String(s.item.position);
    $("prompt").textContent = s.item.prompt;
    $("item").classList.remove("hidden");
    $("status").textContent = "Pair " + s.item.position + " of " + s.total;
    $("submit").disabled = true;
    player.load([s.item.left, s.item.right]);
    shownAt = Date.now();
    setPage("item");
    window.scrollTo(0, 0);
  }

  function request(method, url, body) {
    var init = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) { throw new Error(data.error || ("request failed (" + response.status + ")")); }
        return data;
      });
    });
  }

  function submit(event) {
    if (event) { event.preventDefault(); }
    var given = answers();
    if (busy || !state || !state.item || given === null) { return; }
    busy = true;
    $("submit").disabled = true;
    setPage("submitting");
    $("status").textContent = "Saving...";
    var body = { item: state.item.id, answers: given, elapsed_ms: Math.min(Date.now() - shownAt, 86400000) };
    request("POST", api + "/answer", body).then(function (next) {
      busy = false;
      showError("");
      render(next);
    }).catch(function (error) {
      busy = false;
      setPage("item");
      $("status").textContent = "";
      showError("Your answer was not saved: " + error.message + ". Please try again.");
      $("submit").disabled = answers() === null;
    });
  }

  function onKey(event) {
    if (!state || !state.item || event.altKey || event.ctrlKey || event.metaKey) { return; }
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    var tag = event.target && event.target.tagName;
    // Space on a focused button or the seek bar is that control's own; Enter always submits (after a click on
    // Play, the focus is still on it, and Enter must not toggle playback), except on the submit button itself,
    // whose default action already submits.
    if (key === " " && (tag === "BUTTON" || tag === "INPUT" && event.target.type === "range")) { return; }
    if (key === "Enter" && event.target.id === "submit") { return; }
    var sets = $("questions").children;
    if (KEYS[key] && sets.length) {
      var input = $("answer-" + sets[current].dataset.aspect + "-" + KEYS[key]);
      input.checked = true;
      answered();
    } else if (key === "ArrowDown" || key === "ArrowUp") {
      current = (current + (key === "ArrowDown" ? 1 : sets.length - 1)) % sets.length;
      highlight();
    } else if (key === " ") {
      player.toggle();
    } else if (key === "ArrowLeft" || key === "ArrowRight") {
      player.pause();
      player.step(key === "ArrowRight" ? 0.125 : -0.125);
    } else if (key === "Enter") {
      submit();
    } else {
      return;
    }
    event.preventDefault();
  }

  document.addEventListener("DOMContentLoaded", function () {
    player = window.vbenchPlayer.sync({
      videos: [$("video-left"), $("video-right")], play: $("play"), seek: $("seek"), time: $("time")
    });
    $("answers").addEventListener("submit", submit);
    document.addEventListener("keydown", onKey);
    request("GET", api + "/state").then(render).catch(function (error) {
      setPage("error");
      showError("This study page cannot be loaded: " + error.message);
    });
  });
}());
