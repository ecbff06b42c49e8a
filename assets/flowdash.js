/* flowdash: clientside callbacks (things only the browser can do). */
window.dash_clientside = Object.assign({}, window.dash_clientside, {
  flowdash: {
    /* Is the server there? A page whose polls fail must not look alive.
       Returns the banner's [text, open, colour]; body.connection-lost hides the
       live status (a RUNNING badge, a countdown) until the server answers. */
    checkConnection: async function (_n) {
      let ok = false;
      try {
        const ctl = new AbortController();
        const timer = setTimeout(() => ctl.abort(), 2500);
        const r = await fetch('_flowdash/alive', {cache: 'no-store', signal: ctl.signal});
        clearTimeout(timer);
        ok = r.ok;
      } catch (e) {
        ok = false;
      }
      const was = document.body.classList.contains('connection-lost');
      document.body.classList.toggle('connection-lost', !ok);
      if (ok) {
        delete document.body.dataset.lostSince;
        return [was ? 'Connection to the server restored.' : '', was, 'success'];
      }
      const since = document.body.dataset.lostSince ||
        (document.body.dataset.lostSince = new Date().toLocaleTimeString());
      return ['Connection to the flowdash server lost (since ' + since + '): what this page ' +
              'shows may be out of date. Retrying every few seconds…', true, 'danger'];
    },

    /* The Fit page polls one request at a time: a tick of its interval reaches the
       poll only when the poll has answered the previous one (or after 5 s, in case
       that answer was lost, e.g. while the server was gone). Dash drops the answer
       of a callback that is asked again while it runs, so polls slower than the
       interval (a busy server) would otherwise never show anything. */
    pollGate: function (n, tick, done) {
      const now = Date.now();
      if (tick && done !== tick.n && now - tick.t < 5000) {
        return window.dash_clientside.no_update;
      }
      return {n: n, t: now};
    },

    /* Download the paper-layout figure as a PNG at the size in its config
       (figures.PAPER_EXPORT: a two-column paper figure, white, at 3×). */
    exportPng: function (n, graphId) {
      if (!n) { return window.dash_clientside.no_update; }
      const gd = document.querySelector('#' + graphId + ' .js-plotly-plot');
      if (!gd || !window.Plotly) { return 'no figure yet'; }
      const opts = Object.assign({format: 'png', filename: 'flowdash-fig3'},
                                 (gd._context || {}).toImageButtonOptions || {});
      window.Plotly.downloadImage(gd, opts);
      return 'exported ' + n;
    },

    /* Presentation: only the live view, large (class "presenting" on the page). */
    togglePresentation: function (n, cls) {
      const on = !(cls || '').split(' ').includes('presenting');
      const base = (cls || '').split(' ').filter(c => c && c !== 'presenting');
      return [base.concat(on ? ['presenting'] : []).join(' '),
              on ? 'Leave presentation' : 'Presentation'];
    },

    /* Settings shown or hidden; at first hidden below 1200 px, so that a
       projector (1024 × 768) shows both live plots. */
    toggleSettings: function (n, cls) {
      const shown = !(cls || '').split(' ').includes('settings-collapsed');
      const show = n ? !shown : window.innerWidth >= 1200;
      const base = (cls || '').split(' ').filter(c => c && c !== 'settings-collapsed');
      return [base.concat(show ? [] : ['settings-collapsed']).join(' '),
              show ? 'Hide settings' : 'Show settings'];
    }
  }
});
