/* Two (or more) videos played as one: started and paused together, looping, muted, one play/pause button and
 * one seek bar driving all of them; the first video is the clock, the others are pulled back to it when
 * they drift. Used by the participant page and the run browser's compare view.
 *
 * window.vbenchPlayer.sync({videos: [HTMLVideoElement...], play: button, seek: input[type=range], time: span})
 *   -> {toggle(), step(seconds), load([urls]), pause()}
 * The play button's text is "Play" / "Pause" and it carries data-playing="true|false".
 * Each video gets data-ready="true" once it can play (readyState >= 2), which browser tests can wait for.
 */
(function () {
  "use strict";
  var DRIFT = 0.12; // seconds the followers may lag behind before they are re-aligned

  function fmt(t) {
    if (!isFinite(t)) { t = 0; }
    return t.toFixed(2) + " s";
  }

  function sync(opts) {
    var videos = opts.videos, lead = videos[0], seeking = false, playing = false;
    videos.forEach(function (v) {
      v.muted = true; v.loop = true; v.playsInline = true; v.preload = "auto";
      v.addEventListener("loadeddata", function () { v.dataset.ready = "true"; });
      v.addEventListener("emptied", function () { v.dataset.ready = "false"; });
    });

    function duration() {
      var d = videos.map(function (v) { return v.duration; }).filter(isFinite);
      return d.length ? Math.min.apply(null, d) : 0;
    }
    function showState() {
      opts.play.textContent = playing ? "Pause" : "Play";
      opts.play.dataset.playing = playing ? "true" : "false";
    }
    function align() {
      var t = lead.currentTime;
      videos.slice(1).forEach(function (v) {
        var target = isFinite(v.duration) && v.duration > 0 ? t % v.duration : t;
        if (Math.abs(v.currentTime - target) > DRIFT) { v.currentTime = target; }
      });
    }
    function play() {
      playing = true; showState(); align();
      videos.forEach(function (v) { var p = v.play(); if (p && p.catch) { p.catch(function () {}); } });
    }
    function pause() {
      playing = false; showState();
      videos.forEach(function (v) { v.pause(); });
      align();
    }
    function seekTo(t) {
      videos.forEach(function (v) {
        var d = isFinite(v.duration) && v.duration > 0 ? v.duration : t + 1;
        v.currentTime = Math.max(0, Math.min(t, d - 0.001));
      });
    }
    function tick() {
      var d = duration();
      if (!seeking && d > 0) { opts.seek.value = String(Math.round(1000 * (lead.currentTime % d) / d)); }
      if (opts.time) { opts.time.textContent = fmt(lead.currentTime) + " / " + fmt(d); }
      if (playing) { align(); }
      window.requestAnimationFrame(tick);
    }

    opts.play.addEventListener("click", function () { if (playing) { pause(); } else { play(); } });
    opts.seek.min = "0"; opts.seek.max = "1000"; opts.seek.step = "1";
    opts.seek.addEventListener("input", function () { seeking = true; seekTo(duration() * Number(opts.seek.value) / 1000); });
    opts.seek.addEventListener("change", function () { seeking = false; });
    window.requestAnimationFrame(tick);
    showState();

    return {
      toggle: function () { if (playing) { pause(); } else { play(); } },
      pause: pause,
      step: function (seconds) {
        var d = duration();
        if (d > 0) { seekTo(((lead.currentTime + seconds) % d + d) % d); }
      },
      load: function (urls) {
        videos.forEach(function (v, i) {
          v.dataset.ready = "false";
          if (urls[i]) { v.src = urls[i]; } else { v.removeAttribute("src"); }
          v.load();
        });
        opts.seek.value = "0";
        play(); // autoplay is allowed: the videos are muted
      }
    };
  }

  window.vbenchPlayer = { sync: sync };
}());
