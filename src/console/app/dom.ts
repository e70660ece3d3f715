/**
 * Tiny DOM helpers: elements are built with createElement and textContent only (never
 * innerHTML), so nothing a server or an audit entry returns can become markup or script.
 */
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | null | EventListener>;

function apply(el: Element, attrs: Attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v as EventListener);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

function append(el: Element, children: Child[]) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
export function s(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

export function clear(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

export function fmtTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function ago(ms: number | null, now = Date.now()): string {
  if (ms === null) return 'not seen by this manager since it started';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

export function errorBox(e: unknown): HTMLElement {
  return h('div', { class: 'error', role: 'alert' }, message(e));
}

export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function toast(text: string): void {
  const t = document.getElementById('toast');
  if (!t) return;
  t.textContent = text;
  setTimeout(() => {
    if (t.textContent === text) t.textContent = '';
  }, 5000);
}

/**
 * A modal confirmation (native <dialog>: focus trapped, Escape cancels). Resolves with the
 * form's values when confirmed, undefined when cancelled.
 */
export function confirmDialog(o: {
  title: string;
  body: Child[];
  confirm: string;
  danger?: boolean;
  fields?: HTMLElement[];
}): Promise<FormData | undefined> {
  return new Promise((resolve) => {
    const form = h('form', { method: 'dialog' });
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const ok = h('button', { type: 'submit', class: o.danger ? 'danger' : '' }, o.confirm);
    append(form, [
      h('h2', {}, o.title),
      ...o.body.map((b) => (typeof b === 'string' ? h('p', {}, b) : b)),
      ...(o.fields ?? []),
      h('div', { class: 'actions' }, ok, cancel),
    ]);
    const dlg = h('dialog', { 'aria-label': o.title }, form);
    document.body.append(dlg);
    let result: FormData | undefined;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!form.reportValidity()) return;
      result = new FormData(form);
      dlg.close();
    });
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(result);
    });
    dlg.showModal();
    (o.fields?.[0]?.querySelector('input') ?? cancel).focus();
  });
}
