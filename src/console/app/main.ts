/**
 * The Blindfold web console (served by the manager at /ui, src/console/serve.ts). Hash routes,
 * one page module each; the operator token is kept in sessionStorage and sent as a bearer header
 * on every API call (src/console/app/api.ts).
 */
import { api, setToken, token, whenSignedOut } from './api.ts';
import { audit } from './audit.ts';
import { cluster } from './cluster.ts';
import { clear, errorBox, h, message } from './dom.ts';
import { keys } from './keys.ts';
import { master } from './master.ts';
import { overview } from './overview.ts';

const PAGES: Record<string, { title: string; render: (root: HTMLElement) => Promise<() => void> }> =
  {
    overview: { title: 'Overview', render: overview },
    keys: { title: 'Keys', render: keys },
    cluster: { title: 'Cluster', render: cluster },
    audit: { title: 'Audit', render: audit },
    master: { title: 'Master key', render: master },
  };

const main = document.getElementById('main')!;
const nav = document.getElementById('nav')!;
const signout = document.getElementById('signout') as HTMLButtonElement;
let cleanup: () => void = () => {};
let generation = 0;

function signIn(reason?: string) {
  cleanup();
  cleanup = () => {};
  nav.hidden = true;
  signout.hidden = true;
  const input = h('input', {
    id: 'token',
    type: 'password',
    autocomplete: 'off',
    required: true,
    placeholder: 'bf-op-…',
    'aria-describedby': 'token-help',
  });
  const err = h('div', { 'aria-live': 'assertive' });
  if (reason) err.append(h('div', { class: 'error', role: 'alert' }, reason));
  const form = h(
    'form',
    { class: 'card signin', 'aria-label': 'Sign in' },
    h('h1', {}, 'Sign in'),
    h('label', {}, 'Operator token', input),
    h(
      'p',
      { id: 'token-help', class: 'muted' },
      'The token is in the manager\'s operator.token file (with "npm start": .blindfold/manager/operator.token). It stays in this tab only.',
    ),
    err,
    h('button', { type: 'submit', id: 'signin' }, 'Sign in'),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setToken(input.value.trim());
    try {
      await api('GET', '/v1/keyrings');
      if (!location.hash || location.hash === '#/signin') location.hash = '#/overview';
      void route();
    } catch (e) {
      setToken(null);
      clear(err, h('div', { class: 'error', role: 'alert' }, message(e)));
      input.focus();
    }
  });
  clear(main, form);
  input.focus();
}

async function route() {
  if (!token()) {
    signIn();
    return;
  }
  const name = location.hash.replace(/^#\/?/, '') || 'overview';
  const page = PAGES[name] ?? PAGES.overview!;
  nav.hidden = false;
  signout.hidden = false;
  for (const a of Array.from(nav.querySelectorAll('a'))) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  cleanup();
  cleanup = () => {};
  const mine = ++generation;
  document.title = `${page.title} · Blindfold console`;
  clear(main, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const c = await page.render(main);
    if (mine === generation) cleanup = c;
    else c();
  } catch (e) {
    if (mine === generation) clear(main, h('h1', {}, page.title), errorBox(e));
  }
  main.focus();
}

function start() {
  for (const [id, p] of Object.entries(PAGES)) {
    nav.append(h('a', { href: `#/${id}`, 'data-page': id }, p.title));
  }
  signout.addEventListener('click', () => {
    setToken(null);
    location.hash = '#/signin';
    signIn('Signed out.');
  });
  whenSignedOut(() => {
    setToken(null);
    signIn('The manager did not accept the token (or it changed): sign in again.');
  });
  window.addEventListener('hashchange', () => {
    if (token()) void route();
  });
  void route().catch((e) => clear(main, errorBox(e), h('p', {}, message(e))));
}

start();
