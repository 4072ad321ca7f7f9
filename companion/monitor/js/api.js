// The session and REST calls. The access token lives in this tab's sessionStorage: it
// survives a reload of the tab, is not shared with other tabs or sites, is gone when the
// tab closes, and the browser never sends it by itself (it goes only into the
// Authorization header below and the live socket's first message), so another site cannot
// make this browser act for the signed-in user.

const KEY = 'openplc-monitor-token';

export const session = {
  token: sessionStorage.getItem(KEY),
  user: '',
  role: 'viewer',
  exp: 0,
};

const listeners = new Set();

/** `fn(reason)` runs when the session ends (sign-out, expiry, revoked, user changed). */
export function onSignedOut(fn) {
  listeners.add(fn);
}

export function mayAct() {
  return session.role === 'user' || session.role === 'admin';
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A call to `/api{path}` with the token; JSON in, JSON out. A 401 ends the session. */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(`/api${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    });
  } catch (e) {
    throw new ApiError(0, 'The runtime cannot be reached');
  }
  let data = null;
  try {
    data = await response.json();
  } catch (e) {
    data = null;
  }
  const message = (typeof data === 'string' && data) || (data && (data.msg || data.error)) ||
    `${response.status} ${response.statusText}`;
  if (response.status === 401 && session.token) {
    endSession(`Signed out: ${message}`);
  }
  if (!response.ok) throw new ApiError(response.status, message);
  return data;
}

/** Signs in; resolves once the token is kept. */
export async function signIn(username, password) {
  const data = await api('/login', { method: 'POST', body: { username, password } });
  if (!data || typeof data.access_token !== 'string') throw new ApiError(500, 'Unexpected answer to the login');
  session.token = data.access_token;
  sessionStorage.setItem(KEY, session.token);
}

/** Logs the token out on the server (revoked for good), then forgets it. */
export async function signOut() {
  try {
    if (session.token) await api('/logout', { method: 'POST', body: {} });
  } catch (e) {
    // Already invalid: nothing to revoke.
  }
  endSession('Signed out');
}

/** Forgets the token and tells the page. */
export function endSession(reason) {
  if (!session.token) return;
  session.token = null;
  sessionStorage.removeItem(KEY);
  for (const fn of listeners) fn(reason);
}

/** Whether the runtime has users yet (only then is there anything to sign in to). */
export async function hasUsers() {
  const r = await fetch('/api/get-users-info', { cache: 'no-store', credentials: 'omit' });
  return r.status !== 404;
}
