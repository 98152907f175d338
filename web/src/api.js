// Talks to /api/v1: bearer token from sign-in (kept for the browser tab), one refresh on expiry,
// errors as { status, code, message }.

const KEY = 'devpulse.session';

export function session() {
  try { return JSON.parse(sessionStorage.getItem(KEY)) ?? null; } catch { return null; }
}

function save(tokens) {
  if (tokens) sessionStorage.setItem(KEY, JSON.stringify(tokens));
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, body, token) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!response.ok) {
    throw new ApiError(response.status, json?.code ?? 'error', json?.message ?? `HTTP ${response.status}`);
  }
  return json;
}

export async function signIn(email, password) {
  const tokens = await call('POST', '/api/v1/auth/login', { email, password });
  save({ access: tokens.access_token, refresh: tokens.refresh_token });
}

export async function signOut() {
  const current = session();
  save(null);
  if (current?.refresh) {
    await call('POST', '/api/v1/auth/logout', { refresh_token: current.refresh }).catch(() => {});
  }
}

export async function api(path, { method = 'GET', body } = {}) {
  const current = session();
  if (!current) throw new ApiError(401, 'unauthorized', 'sign in first');
  try {
    return await call(method, path, body, current.access);
  } catch (e) {
    if (e.status !== 401 || e.code !== 'token_expired') throw e;
    const tokens = await call('POST', '/api/v1/auth/refresh', { refresh_token: current.refresh }).catch((err) => {
      save(null);
      throw err;
    });
    save({ access: tokens.access_token, refresh: tokens.refresh_token });
    return call(method, path, body, tokens.access_token);
  }
}
