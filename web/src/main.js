// The dashboard: a hash-routed single page over /api/v1 (sign-in, overview, teams, developers,
// repositories, attendance, alerts, admin). Every number comes from the precomputed tables
// through the API, and every metric carries its published definition (docs/METRICS.md).
import './style.css';
import { api, ApiError, session, signIn, signOut } from './api.js';
import { barChart, byDay, daysBetween, resetCharts, timeChart } from './charts.js';

const app = document.getElementById('app');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const popover = document.getElementById('definition');

let me = null;
let definitions = new Map();

// ---- formatting ----------------------------------------------------------------------------

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}
const percent = (v) => (v === null || v === undefined ? '—' : `${Math.round(v * 100)}%`);
const hours = (s) => (s === null || s === undefined ? null : +(s / 3600).toFixed(2));

// ---- definitions ---------------------------------------------------------------------------

/** An ⓘ button that shows the definition of `field` (from /api/v1/metrics/definitions). */
function info(field) {
  const d = definitions.get(field);
  if (!d) return '';
  return `<button type="button" class="info" data-field="${esc(field)}" title="${esc(`${field}: ${d.text}`)}" aria-label="Definition of ${esc(field)}">i</button>`;
}

document.addEventListener('click', (event) => {
  const button = event.target.closest('button.info');
  if (!button) {
    if (!event.target.closest('#definition')) popover.hidden = true;
    return;
  }
  const d = definitions.get(button.dataset.field);
  popover.innerHTML = `<strong>${esc(button.dataset.field)}</strong> <small>(${esc(d.section)})</small><p>${esc(d.text)}</p>`;
  const box = button.getBoundingClientRect();
  popover.style.top = `${window.scrollY + box.bottom + 6}px`;
  popover.style.left = `${Math.min(window.scrollX + box.left, window.innerWidth - 380)}px`;
  popover.hidden = false;
});

// ---- layout --------------------------------------------------------------------------------

function tile(label, value, field, extra = '') {
  return `<div class="tile" data-metric="${esc(field)}"><div class="label">${esc(label)} ${info(field)}</div><div class="value">${value}</div>${extra}</div>`;
}

/** A chart card; `field` names the metric it draws (null: not a metric, e.g. dead letters). */
function card(title, field, id, tall = false) {
  return `<section class="card"${field ? '' : ' data-not-a-metric'}><h3>${esc(title)} ${field ? info(field) : ''}</h3><div class="chart${tall ? ' tall' : ''}"><canvas id="${id}"></canvas></div></section>`;
}

function band(b) {
  return b ? `<span class="band band-${esc(b)}">${esc(b)}</span>` : '';
}

function rangeForm(range) {
  return `<form class="range" id="range">
    <label>From <input type="date" name="from" value="${esc(range.from)}"></label>
    <label>To <input type="date" name="to" value="${esc(range.to)}"></label>
    <button type="submit">Show</button></form>`;
}

function query() {
  const [, q = ''] = location.hash.split('?');
  return new URLSearchParams(q);
}

function bindRange() {
  document.getElementById('range')?.addEventListener('submit', (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const [path] = location.hash.split('?');
    location.hash = `${path}?from=${form.get('from')}&to=${form.get('to')}`;
  });
}

function rangeQuery() {
  const q = query();
  const params = new URLSearchParams();
  for (const k of ['from', 'to']) if (q.get(k)) params.set(k, q.get(k));
  const s = params.toString();
  return s ? `?${s}` : '';
}

function problem(e) {
  if (e instanceof ApiError && e.status === 403) {
    return `<div class="error" role="alert" data-code="forbidden"><h2>Not yours to see</h2><p>${esc(e.message)}</p></div>`;
  }
  if (e instanceof ApiError && e.status === 404) {
    return `<div class="error" role="alert" data-code="not_found"><h2>Not found</h2><p>${esc(e.message)}</p></div>`;
  }
  return `<div class="error" role="alert"><h2>Something went wrong</h2><p>${esc(e.message)}</p></div>`;
}

function activityChart(id, range, rows) {
  const days = daysBetween(range.from, range.to);
  timeChart(document.getElementById(id), {
    days,
    type: 'bar',
    series: [
      { label: 'PRs opened', values: byDay(days, rows, 'prs_opened') },
      { label: 'PRs merged', values: byDay(days, rows, 'prs_merged') },
      { label: 'Reviews given', values: byDay(days, rows, 'reviews_given') },
    ],
  });
}

function cycleChart(id, range, rows) {
  const days = daysBetween(range.from, range.to);
  timeChart(document.getElementById(id), {
    days,
    yLabel: 'hours',
    series: [
      { label: 'Cycle time p50', values: byDay(days, rows, 'cycle_time_p50_s', null, hours) },
      { label: 'Pickup time p50', values: byDay(days, rows, 'pickup_time_p50_s', null, hours) },
      { label: 'Review time p50', values: byDay(days, rows, 'review_time_p50_s', null, hours) },
    ],
  });
}

function scoreCharts(idTrend, idParts, scores) {
  timeChart(document.getElementById(idTrend), {
    days: scores.map((s) => s.iso_week),
    yLabel: 'score',
    series: [{ label: 'Delivery Reliability Score', values: scores.map((s) => s.score) }],
  });
  const latest = scores.at(-1);
  if (idParts && latest) {
    const parts = ['flow_predictability', 'review_responsiveness', 'change_stability', 'wip_hygiene'];
    barChart(document.getElementById(idParts), {
      labels: parts.map((p) => p.replace('_', ' ')),
      values: parts.map((p) => latest[p]),
      label: latest.iso_week,
      max: 1,
    });
  }
}

// ---- pages ---------------------------------------------------------------------------------

async function overviewPage() {
  const o = await api(`/api/v1/overview${rangeQuery()}`);
  const d = o.dora;
  const r = o.reliability;
  app.innerHTML = `
    <h1>${esc(o.organization.name)} <small>${esc(o.range.from)} – ${esc(o.range.to)}</small></h1>
    ${rangeForm(o.range)}
    <div class="tiles">
      ${tile('Deployment frequency', d ? `${d.deploy_days_per_week} days/week ${band(d.band)}` : '—', 'band')}
      ${tile('Lead time for changes', duration(d?.lead_time_p50_s), 'lead_time_p50_s')}
      ${tile('Change failure rate', percent(d?.change_failure_rate), 'change_failure_rate')}
      ${tile('Failed deployment recovery', duration(d?.recovery_time_p50_s), 'recovery_time_p50_s')}
      ${tile('Delivery Reliability Score', r?.score === null || r?.score === undefined ? '—' : Math.round(r.score), 'reliability_scores', r ? `<small>${esc(r.iso_week)}</small>` : '')}
      ${tile('Open alerts', `<a href="#/alerts">${o.open_alerts}</a>`, 'health_alerts')}
    </div>
    <div class="grid">
      ${card('Pull requests and reviews per day', 'prs_merged', 'chart-activity')}
      ${card('Cycle, pickup and review time (median, hours)', 'cycle_time_p50_s', 'chart-cycle')}
      ${card('Deployments per day', 'deployments', 'chart-deployments')}
      ${card('DORA: deploy days per week and change failure rate (28-day window)', 'deploy_days_per_week', 'chart-dora')}
      ${card('Delivery Reliability Score per week', 'reliability_scores', 'chart-score')}
      ${card('Score components (latest week)', 'flow_predictability', 'chart-components')}
    </div>`;
  bindRange();
  const days = daysBetween(o.range.from, o.range.to);
  activityChart('chart-activity', o.range, o.trend);
  cycleChart('chart-cycle', o.range, o.trend);
  timeChart(document.getElementById('chart-deployments'), {
    days,
    type: 'bar',
    stacked: true,
    series: [
      { label: 'Successful', values: days.map((day, i) => byDay(days, o.trend, 'deployments')[i] - byDay(days, o.trend, 'failed_deployments')[i]) },
      { label: 'Failed as a change', values: byDay(days, o.trend, 'failed_deployments') },
    ],
  });
  timeChart(document.getElementById('chart-dora'), {
    days,
    series: [
      { label: 'Deploy days per week', values: byDay(days, o.dora_trend, 'deploy_days_per_week', null) },
      { label: 'Change failure rate (%)', values: byDay(days, o.dora_trend, 'change_failure_rate', null, (v) => Math.round(v * 100)) },
    ],
  });
  scoreCharts('chart-score', 'chart-components', o.reliability_trend);
}

async function teamsPage() {
  const teams = await api('/api/v1/teams');
  app.innerHTML = `<h1>Teams</h1>${teams.length ? '' : '<p>No teams you belong to yet.</p>'}
    <ul class="list">${teams.map((t) => `<li><a href="#/teams/${t.id}">${esc(t.name)}</a> <small>${t.members.length} people</small></li>`).join('')}</ul>`;
}

async function teamPage(id) {
  const t = await api(`/api/v1/teams/${encodeURIComponent(id)}/metrics${rangeQuery()}`);
  app.innerHTML = `
    <h1>${esc(t.team.name)} <small>${esc(t.range.from)} – ${esc(t.range.to)}</small></h1>
    ${rangeForm(t.range)}
    <div class="tiles">
      ${tile('PRs merged', t.totals.prs_merged, 'prs_merged')}
      ${tile('Reviews given', t.totals.reviews_given, 'reviews_given')}
      ${tile('Commits', t.totals.commits, 'commits')}
      ${tile('Reliability score', t.reliability.at(-1)?.score == null ? '—' : Math.round(t.reliability.at(-1).score), 'reliability_scores')}
    </div>
    <div class="grid">
      ${card('Pull requests and reviews per day', 'prs_merged', 'chart-activity')}
      ${card('Cycle, pickup and review time (median, hours)', 'cycle_time_p50_s', 'chart-cycle')}
      ${card('Delivery Reliability Score per week', 'reliability_scores', 'chart-score')}
      ${card('Score components (latest week)', 'flow_predictability', 'chart-components')}
    </div>
    <h2>People</h2>
    <ul class="list">${t.team.members.map((m) => `<li><a href="#/developers/${m.user_id}">${esc(m.display_name)}</a>${m.is_manager ? ' <small>manager</small>' : ''}</li>`).join('')}</ul>`;
  bindRange();
  activityChart('chart-activity', t.range, t.daily);
  cycleChart('chart-cycle', t.range, t.daily);
  scoreCharts('chart-score', 'chart-components', t.reliability);
}

async function developerPage(id) {
  const p = await api(`/api/v1/developers/${encodeURIComponent(id)}${rangeQuery()}`);
  const days = daysBetween(p.range.from, p.range.to);
  const mine = me && p.user.id === me.user.id;
  app.innerHTML = `
    <h1>${esc(p.user.display_name)} <small>${esc(p.user.github_login ?? 'no GitHub login linked')} · ${esc(p.range.from)} – ${esc(p.range.to)}</small></h1>
    ${mine ? '<p class="note">This page shows what DevPulse keeps about you for these days. Everything stored about you: <a href="#/my-data">your data</a>.</p>' : ''}
    ${rangeForm(p.range)}
    <div class="tiles">
      ${tile('PRs opened', p.totals.prs_opened, 'prs_opened')}
      ${tile('PRs merged', p.totals.prs_merged, 'prs_merged')}
      ${tile('Reviews given', p.totals.reviews_given, 'reviews_given')}
      ${tile('Commits', p.totals.commits, 'commits')}
      ${tile('Days worked', p.attendance.length, 'worked_seconds')}
    </div>
    <div class="grid">
      ${card('Pull requests and reviews per day', 'prs_merged', 'chart-activity')}
      ${card('Cycle, pickup and review time (median, hours)', 'cycle_time_p50_s', 'chart-cycle')}
      ${card('Hours per day (active and idle)', 'active_seconds', 'chart-attendance')}
    </div>
    <h2>Alerts about ${mine ? 'you' : esc(p.user.display_name)}</h2>
    ${alertTable(p.alerts)}`;
  bindRange();
  activityChart('chart-activity', p.range, p.daily);
  cycleChart('chart-cycle', p.range, p.daily);
  timeChart(document.getElementById('chart-attendance'), {
    days,
    type: 'bar',
    stacked: true,
    yLabel: 'hours',
    series: [
      { label: 'Active', values: byDay(days, p.attendance, 'active_seconds', 0, hours) },
      { label: 'Idle', values: byDay(days, p.attendance, 'idle_seconds', 0, hours) },
    ],
  });
}

async function repositoriesPage() {
  const r = await api(`/api/v1/repositories${rangeQuery()}`);
  const repos = r.repositories;
  app.innerHTML = `
    <h1>Repositories <small>${esc(r.range.from)} – ${esc(r.range.to)}</small></h1>
    ${rangeForm(r.range)}
    <div class="grid">
      ${card('PRs merged per repository', 'prs_merged', 'chart-merged', repos.length > 8)}
      ${card('Deployments per repository', 'deployments', 'chart-deploys', repos.length > 8)}
    </div>
    <table><thead><tr><th>Repository</th><th>DORA band ${info('band')}</th><th>Lead time ${info('lead_time_p50_s')}</th><th>Change failure rate ${info('change_failure_rate')}</th></tr></thead>
    <tbody>${repos.map((x) => `<tr><td>${esc(x.totals.repository)}</td><td>${band(x.dora?.band) || '—'}</td><td>${duration(x.dora?.lead_time_p50_s)}</td><td>${percent(x.dora?.change_failure_rate)}</td></tr>`).join('')}</tbody></table>`;
  bindRange();
  const labels = repos.map((x) => x.totals.repository);
  barChart(document.getElementById('chart-merged'), { labels, values: repos.map((x) => x.totals.prs_merged), label: 'PRs merged' });
  barChart(document.getElementById('chart-deploys'), { labels, values: repos.map((x) => x.totals.deployments), label: 'Deployments' });
}

async function attendancePage() {
  const q = query();
  const people = await api('/api/v1/users');
  const target = q.get('user') ?? String(me.user.id);
  const params = new URLSearchParams();
  if (target !== String(me.user.id)) params.set('user_id', target);
  for (const k of ['from', 'to']) if (q.get(k)) params.set(k, q.get(k));
  const rows = await api(`/api/v1/attendance?${params}`);
  const to = q.get('to') ?? new Date().toISOString().slice(0, 10);
  const from = q.get('from') ?? daysBetween('2000-01-01', to).at(-30);
  const days = daysBetween(from, to);
  app.innerHTML = `
    <h1>Attendance</h1>
    <form class="range" id="person"><label>Person <select name="user">${people.map((u) => `<option value="${u.id}" ${String(u.id) === target ? 'selected' : ''}>${esc(u.display_name)}</option>`).join('')}</select></label><button type="submit">Show</button></form>
    <div class="tiles">
      ${tile('Days worked', rows.length, 'worked_seconds')}
      ${tile('Active hours', hours(rows.reduce((n, r) => n + r.active_seconds, 0)), 'active_seconds')}
      ${tile('Overtime hours', hours(rows.reduce((n, r) => n + r.overtime_seconds, 0)), 'overtime_seconds')}
    </div>
    <div class="grid">${card('Hours per day', 'active_seconds', 'chart-attendance')}${card('First in and last out (hour of day, UTC)', 'first_in', 'chart-times')}</div>`;
  document.getElementById('person').addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/attendance?user=${new FormData(event.target).get('user')}`;
  });
  timeChart(document.getElementById('chart-attendance'), {
    days,
    type: 'bar',
    stacked: true,
    yLabel: 'hours',
    series: [
      { label: 'Active', values: byDay(days, rows, 'active_seconds', 0, hours) },
      { label: 'Idle', values: byDay(days, rows, 'idle_seconds', 0, hours) },
      { label: 'Overtime', values: byDay(days, rows, 'overtime_seconds', 0, hours), type: 'line' },
    ],
  });
  const hourOf = (t) => { const d = new Date(t); return +(d.getUTCHours() + d.getUTCMinutes() / 60).toFixed(2); };
  timeChart(document.getElementById('chart-times'), {
    days,
    yLabel: 'hour',
    series: [
      { label: 'First in', values: byDay(days, rows, 'first_in', null, hourOf) },
      { label: 'Last out', values: byDay(days, rows, 'last_out', null, hourOf) },
    ],
  });
}

function alertTable(alerts, acknowledge = false) {
  if (!alerts.length) return '<p>No alerts.</p>';
  return `<table class="alerts"><thead><tr><th>Kind ${info('health_alerts')}</th><th>About</th><th>Message</th><th>Opened</th><th>State</th></tr></thead><tbody>
    ${alerts.map((a) => `<tr data-alert="${a.id}"><td>${esc(a.kind)}</td><td>${esc(a.subject)}</td><td>${esc(a.message)}</td><td>${esc(a.opened_at.slice(0, 16).replace('T', ' '))}</td>
      <td>${a.resolved_at ? 'resolved' : a.acknowledged_at ? 'acknowledged' : acknowledge ? `<button type="button" class="ack" data-id="${a.id}">Acknowledge</button>` : 'open'}</td></tr>`).join('')}
    </tbody></table>`;
}

async function alertsPage() {
  const status = query().get('status') ?? 'open';
  const page = await api(`/api/v1/alerts?status=${encodeURIComponent(status)}&limit=200`);
  const kinds = {};
  for (const a of page.items) kinds[a.kind] = (kinds[a.kind] ?? 0) + 1;
  app.innerHTML = `
    <h1>Health alerts</h1>
    <p class="tabs">${['open', 'resolved', 'all'].map((s) => `<a href="#/alerts?status=${s}" ${s === status ? 'aria-current="page"' : ''}>${s}</a>`).join(' · ')}</p>
    ${page.items.length ? `<div class="grid">${card('Alerts by kind', 'health_alerts', 'chart-kinds')}</div>` : ''}
    ${alertTable(page.items, true)}`;
  if (page.items.length) {
    barChart(document.getElementById('chart-kinds'), { labels: Object.keys(kinds), values: Object.values(kinds), label: 'alerts' });
  }
  app.querySelectorAll('button.ack').forEach((button) => button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await api(`/api/v1/alerts/${button.dataset.id}/acknowledge`, { method: 'POST' });
      button.replaceWith('acknowledged');
    } catch (e) {
      button.disabled = false;
      button.title = e.message;
    }
  }));
}

async function adminPage() {
  const [letters, syncs, runs] = await Promise.all([
    api('/api/v1/admin/dead-letters?limit=100'),
    api('/api/v1/admin/sync-jobs?limit=50'),
    api('/api/v1/admin/cron-runs?limit=200'),
  ]);
  const byQueue = {};
  for (const l of letters) byQueue[l.queue] = (byQueue[l.queue] ?? 0) + 1;
  const schedules = [...new Set(runs.items.map((r) => r.schedule))];
  app.innerHTML = `
    <h1>Operations</h1>
    <div class="grid">
      ${letters.length ? card('Dead letters by queue', null, 'chart-letters') : ''}
      ${card('Cron runs (latest 200) by schedule and outcome', 'When numbers are computed', 'chart-runs')}
    </div>
    <h2>Dead letters</h2>
    ${letters.length ? `<table><thead><tr><th>Id</th><th>Queue</th><th>Reason</th><th>Attempts</th><th>Dead at</th></tr></thead><tbody>
      ${letters.map((l) => `<tr><td>${l.id}</td><td>${esc(l.queue)}</td><td>${esc(l.reason)}</td><td>${l.attempts}</td><td>${esc(l.dead_at.slice(0, 16).replace('T', ' '))}</td></tr>`).join('')}</tbody></table>` : '<p>No dead letters.</p>'}
    <h2>Sync jobs</h2>
    ${syncs.length ? `<table><thead><tr><th>Id</th><th>Kind</th><th>Status</th><th>Progress</th><th>Created</th></tr></thead><tbody>
      ${syncs.map((s) => `<tr><td>${s.id}</td><td>${esc(s.kind)}</td><td>${esc(s.status)}</td><td><code>${esc(JSON.stringify(s.progress))}</code></td><td>${esc(s.created_at.slice(0, 16).replace('T', ' '))}</td></tr>`).join('')}</tbody></table>` : '<p>No sync jobs (GitHub App credentials let the workers sync from GitHub).</p>'}
    <h2>Cron runs</h2>
    <table><thead><tr><th>Schedule</th><th>Tick</th><th>Worker</th><th>Outcome</th></tr></thead><tbody>
      ${runs.items.slice(0, 30).map((r) => `<tr><td>${esc(r.schedule)}</td><td>${esc(r.tick.slice(0, 16).replace('T', ' '))}</td><td>${esc(r.claimed_by)}</td><td>${esc(r.outcome ?? 'running')}</td></tr>`).join('')}</tbody></table>`;
  if (letters.length) {
    barChart(document.getElementById('chart-letters'), { labels: Object.keys(byQueue), values: Object.values(byQueue), label: 'dead letters' });
  }
  const count = (schedule, outcome) => runs.items.filter((r) => r.schedule === schedule && (r.outcome ?? 'running') === outcome).length;
  timeChart(document.getElementById('chart-runs'), {
    days: schedules,
    type: 'bar',
    stacked: true,
    series: ['ok', 'failed', 'running'].map((o) => ({ label: o, values: schedules.map((s) => count(s, o)) })),
  });
}

async function myDataPage() {
  const data = await api('/api/v1/me/data');
  app.innerHTML = `<h1>Everything DevPulse stores about you</h1>
    <p>Exactly what <code>GET /api/v1/me/data</code> returns. DevPulse never records screenshots, keystrokes or window titles.</p>
    <pre class="data">${esc(JSON.stringify(data, null, 2))}</pre>`;
}

function signInPage(message = '') {
  nav.hidden = true;
  who.textContent = '';
  app.innerHTML = `
    <form id="signin" class="signin">
      <h1>Sign in to DevPulse</h1>
      ${message ? `<p class="error" role="alert">${esc(message)}</p>` : ''}
      <label>Email <input name="email" type="email" autocomplete="username" required></label>
      <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
      <button type="submit">Sign in</button>
    </form>`;
  document.getElementById('signin').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    try {
      await signIn(form.get('email'), form.get('password'));
      location.hash = '#/';
      await route();
    } catch (e) {
      signInPage(e.message);
    }
  });
}

// ---- routing -------------------------------------------------------------------------------

const ROUTES = [
  [/^#?\/?$/, overviewPage],
  [/^#\/teams$/, teamsPage],
  [/^#\/teams\/(\d+)$/, teamPage],
  [/^#\/developers\/(\d+)$/, developerPage],
  [/^#\/me$/, () => developerPage(me.user.id)],
  [/^#\/my-data$/, myDataPage],
  [/^#\/repositories$/, repositoriesPage],
  [/^#\/attendance$/, attendancePage],
  [/^#\/alerts$/, alertsPage],
  [/^#\/admin$/, adminPage],
];

function renderNav() {
  const admin = ['owner', 'admin'].includes(me.user.role);
  const links = [
    ['#/', 'Overview'], ['#/teams', 'Teams'], ['#/me', 'My page'], ['#/repositories', 'Repositories'],
    ['#/attendance', 'Attendance'], ['#/alerts', 'Alerts'], ...(admin ? [['#/admin', 'Admin']] : []),
  ];
  nav.innerHTML = `${links.map(([href, label]) => `<a href="${href}">${label}</a>`).join('')}<a href="/docs/" target="_blank" rel="noopener">API</a><button type="button" id="signout">Sign out</button>`;
  nav.hidden = false;
  who.textContent = `${me.user.display_name} (${me.user.role})`;
  document.getElementById('signout').addEventListener('click', async () => {
    await signOut();
    me = null;
    signInPage();
  });
}

async function route() {
  resetCharts();
  popover.hidden = true;
  if (!session()) return signInPage();
  try {
    if (!me) {
      me = await api('/api/v1/me');
      const defs = await api('/api/v1/metrics/definitions');
      definitions = new Map(defs.fields.map((d) => [d.name, d]));
      renderNav();
    }
    const [path] = location.hash.split('?');
    const match = ROUTES.map(([re, page]) => [path.match(re), page]).find(([m]) => m);
    app.dataset.page = path || '#/';
    app.dataset.state = 'loading';
    if (!match) {
      app.innerHTML = problem(new ApiError(404, 'not_found', 'no such page'));
    } else {
      await match[1](...match[0].slice(1));
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      me = null;
      return signInPage('Your session ended; sign in again.');
    }
    app.innerHTML = problem(e);
  }
  for (const a of nav.querySelectorAll('a')) a.toggleAttribute('aria-current', a.getAttribute('href') === (location.hash.split('?')[0] || '#/'));
  app.dataset.state = 'ready';
}

window.addEventListener('hashchange', route);
route();
