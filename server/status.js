// The status page needs no script: this one only fetches the page again
// every few seconds while it is visible, and counts the resets down and
// the ages up between fetches.
(function () {
  'use strict';

  var skew = 0; // the server's clock less this one's, at the last fetch
  var timer = 0;

  // span writes ms in whole seconds, as span in server/status.go does.
  function span(ms) {
    var s = Math.floor(Math.max(ms, 0) / 1000);
    var days = Math.floor(s / 86400), hours = Math.floor(s / 3600) % 24,
        minutes = Math.floor(s / 60) % 60, seconds = s % 60;
    if (days > 0) return days + 'd ' + hours + 'h ' + minutes + 'm';
    if (hours > 0) return hours + 'h ' + minutes + 'm ' + seconds + 's';
    if (minutes > 0) return minutes + 'm ' + seconds + 's';
    return seconds + 's';
  }

  function root() { return document.getElementById('status'); }

  function setSkew() {
    var generated = Date.parse(root().dataset.generatedAt);
    if (!isNaN(generated)) skew = generated - Date.now();
  }

  function tick() {
    var now = Date.now() + skew;
    root().querySelectorAll('[data-resets-at]').forEach(function (el) {
      var left = Date.parse(el.dataset.resetsAt) - now;
      el.textContent = left > 0 ? 'in ' + span(left) : 'reset ' + span(-left) + ' ago';
    });
    root().querySelectorAll('[data-read-at]').forEach(function (el) {
      el.textContent = span(now - Date.parse(el.dataset.readAt)) + ' ago';
    });
  }

  function note(text, failed) {
    var el = document.getElementById('refresh-note');
    el.textContent = text;
    el.classList.toggle('failed', failed);
  }

  function schedule() {
    clearTimeout(timer);
    if (!document.hidden) {
      timer = setTimeout(refresh, 1000 * (Number(root().dataset.refreshSeconds) || 5));
    }
  }

  function refresh() {
    fetch(location.pathname + location.search, { cache: 'no-store', credentials: 'same-origin' })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status + ' ' + response.statusText);
        return response.text();
      })
      .then(function (text) {
        var next = new DOMParser().parseFromString(text, 'text/html').getElementById('status');
        if (!next) throw new Error('the answer has no status');
        root().replaceWith(document.importNode(next, true));
        setSkew();
        tick();
        note('Refreshes every ' + root().dataset.refreshSeconds + ' seconds while this tab is shown.', false);
      })
      .catch(function (err) {
        note('Could not refresh (' + err.message + '); showing the page of ' + root().dataset.generatedAt + '.', true);
      })
      .then(schedule);
  }

  document.addEventListener('visibilitychange', function () {
    if (document.hidden) {
      clearTimeout(timer);
    } else {
      refresh();
    }
  });

  setSkew();
  note('Refreshes every ' + root().dataset.refreshSeconds + ' seconds while this tab is shown.', false);
  setInterval(function () { if (!document.hidden) tick(); }, 1000);
  schedule();
})();
