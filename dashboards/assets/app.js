// codelink console: enhancements only. Every number is in the HTML already.
(function () {
  'use strict';

  // Copy buttons: data-copy names the input whose value is copied.
  document.addEventListener('click', function (e) {
    var button = e.target.closest && e.target.closest('[data-copy]');
    if (!button) return;
    var input = document.getElementById(button.getAttribute('data-copy'));
    if (!input) return;
    var label = button.textContent;
    var done = function () {
      button.textContent = 'Copied';
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () {});
    } else {
      try { if (document.execCommand('copy')) done(); } catch (_) { /* selected: the user copies */ }
    }
  });

  // Forms that disable or revoke something ask first.
  document.addEventListener('submit', function (e) {
    var message = e.target.getAttribute && e.target.getAttribute('data-confirm');
    if (message && !window.confirm(message)) e.preventDefault();
  });

  // The QR picker updates the preview and the download link in place.
  var qr = document.querySelector('form[data-qr]');
  if (qr) {
    qr.addEventListener('change', function () {
      var code = qr.getAttribute('data-qr');
      var channel = qr.elements.qr_channel.value;
      var size = qr.elements.qr_size.value;
      var format = qr.elements.qr_format.value;
      var ch = channel ? '&channel=' + encodeURIComponent(channel) : '';
      var img = document.querySelector('.qr-preview');
      img.src = '/qr/' + code + '.svg?size=256' + ch;
      img.alt = 'QR code of ' + code.toUpperCase() + (channel ? ' for ' + channel : '');
      var link = document.getElementById('qr-download');
      link.href = '/qr/' + code + '.' + format + '?size=' + size + ch;
      link.setAttribute('download', code + (channel ? '-' + channel : '') + '-' + size + '.' + format);
      link.textContent = 'Download ' + format.toUpperCase();
    });
  }

  // Live numbers: while the range reaches now, poll the page's summary.
  var live = document.querySelector('[data-live-url]');
  if (live) {
    var url = live.getAttribute('data-live-url');
    var tick = function () {
      if (document.hidden) return;
      fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          Object.keys(data).forEach(function (key) {
            document.querySelectorAll('[data-live="' + key + '"]').forEach(function (el) {
              if (el.textContent === data[key]) return;
              el.textContent = data[key];
              el.classList.add('flash');
              setTimeout(function () { el.classList.remove('flash'); }, 900);
            });
          });
        })
        .catch(function () { /* offline for a moment: the next tick retries */ });
    };
    setInterval(tick, 2000);
  }

  // Remember the browser's time zone; pages without an explicit zone use it.
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf('cl_tz=') < 0) {
      document.cookie = 'cl_tz=' + encodeURIComponent(zone) + '; path=/ui; max-age=31536000; samesite=strict';
      var shown = document.querySelector('select[data-tz]');
      if (shown && shown.value !== zone && !/[?&]tz=/.test(location.search)) location.reload();
    }
  } catch (_) { /* no Intl: UTC it is */ }

  // On a phone the main nav scrolls sideways: keep the current page's entry in view.
  var current = document.querySelector('.top nav [aria-current]');
  var strip = current && current.closest('nav');
  if (strip && strip.scrollWidth > strip.clientWidth) {
    strip.scrollLeft = current.offsetLeft + current.offsetWidth - strip.clientWidth + 16;
  }
})();
