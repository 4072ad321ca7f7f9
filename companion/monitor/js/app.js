// The monitor page: sign-in, the four views (routed by the URL's #fragment, so the
// browser's back button and plain links work), and the one live connection they share.

import { session, signIn, signOut, onSignedOut, hasUsers, mayAct, ApiError } from './api.js';
import { Live } from './live.js';
import { $, setText } from './format.js';
import { overview } from './overview.js';
import { latency } from './latency.js';
import { variables } from './variables.js';
import { logs } from './logs.js';

const VIEWS = ['overview', 'latency', 'variables', 'logs'];
let current = null;
let views = null;
let live = null;

function showSignIn(note) {
  $('boot').hidden = true;
  $('shell').hidden = true;
  $('signin').hidden = false;
  const n = $('signin-note');
  n.hidden = !note;
  setText(n, note || '');
  $('signin-pass').value = '';
  $('signin-user').focus();
}

async function checkUsers() {
  try {
    if (!(await hasUsers())) {
      showSignIn('This runtime has no user yet: create the first one from the OpenPLC Editor (or with `openplc-runtime add-user`), then sign in here.');
      return;
    }
  } catch (e) {
    // The sign-in itself will say what is wrong.
  }
  showSignIn(null);
}

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const err = $('signin-error');
  err.hidden = true;
  $('signin-submit').disabled = true;
  try {
    await signIn($('signin-user').value.trim(), $('signin-pass').value);
    $('signin-pass').value = '';
    startShell();
  } catch (e) {
    err.hidden = false;
    setText(err, e instanceof ApiError && e.status === 401 ? 'Wrong user name or password' : e.message);
  } finally {
    $('signin-submit').disabled = false;
  }
});

$('signout').addEventListener('click', () => signOut());

// A session's end starts the page afresh: nothing of what the last user saw stays in it.
const NOTE = 'openplc-monitor-note';
onSignedOut((reason) => {
  if (live) live.stop();
  live = null;
  sessionStorage.setItem(NOTE, reason);
  location.reload();
});

function watchChanged() {
  if (!live || !views) return;
  const vars = views.variables.wants();
  live.show({ vars, histogram: current === 'latency' });
}

function route() {
  if (!views) return;
  const wanted = location.hash.replace('#', '');
  const name = VIEWS.includes(wanted) ? wanted : 'overview';
  if (name === current) return;
  if (current) views[current].leave();
  current = name;
  for (const section of document.querySelectorAll('section.view')) section.hidden = section.dataset.view !== name;
  for (const a of document.querySelectorAll('.tabs a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  views[name].enter();
  watchChanged();
}

function applySession(msg) {
  session.user = msg.user;
  session.role = msg.role;
  session.exp = msg.exp;
  setText($('who-name'), msg.user);
  setText($('who-role'), msg.role);
  const ends = new Date(msg.exp * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  $('who-name').title = `Signed in as ${msg.user} (${msg.role}); the session ends at ${ends}`;
  document.body.dataset.role = msg.role;
  document.body.dataset.mayAct = String(mayAct());
  for (const v of Object.values(views)) v.session();
}

function startShell() {
  $('boot').hidden = true;
  $('signin').hidden = true;
  $('shell').hidden = false;
  if (!views) {
    const ctx = { watchChanged };
    views = { overview: overview(ctx), latency: latency(ctx), variables: variables(ctx), logs: logs(ctx) };
  }
  live = new Live({
    hello: applySession,
    tick(t) {
      const pill = $('state-pill');
      pill.dataset.state = t.status;
      setText(pill, t.status);
      const banner = $('banner');
      banner.hidden = true;
      views.overview.tick(t, current === 'overview');
      views.variables.tick(t);
    },
    histogram(h) {
      views.latency.histogram(h, current === 'latency');
    },
    logs(entries) {
      views.logs.logs(entries);
    },
    link(up) {
      const dot = $('link-dot');
      dot.dataset.link = up ? 'up' : 'down';
      dot.title = up ? 'Live updates: connected' : 'Live updates: reconnecting';
      if (!up && session.token) {
        const banner = $('banner');
        banner.hidden = false;
        setText(banner, 'Connection to the runtime lost: reconnecting…');
      }
    },
    error(text) {
      const banner = $('banner');
      banner.hidden = false;
      setText(banner, text);
    },
  });
  live.start();
  route();
}

window.addEventListener('hashchange', route);

if (session.token) {
  startShell();
} else {
  const note = sessionStorage.getItem(NOTE);
  sessionStorage.removeItem(NOTE);
  if (note) showSignIn(note);
  else checkUsers();
}
