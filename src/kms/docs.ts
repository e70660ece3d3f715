/**
 * A static HTML reference rendered from the KMS OpenAPI document (served at /kms/v1/docs): no
 * script, no external resource, so it works offline and under a strict CSP.
 */
type Json = Record<string, unknown>;

function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

/** `code` spans of the descriptions as <code>, after escaping. */
function prose(s: string): string {
  return esc(s).replace(/`([^`]+)`/g, '<code>$1</code>');
}

function typeOf(f: Json): string {
  const t = Array.isArray(f.type) ? (f.type as string[]).join(' | ') : String(f.type ?? 'any');
  const parts = [t];
  if (Array.isArray(f.enum)) parts.push(`one of ${(f.enum as string[]).join(', ')}`);
  if (f.pattern === '^[A-Za-z0-9_-]*$') parts[0] = 'base64url';
  else if (typeof f.pattern === 'string') parts.push(`pattern ${f.pattern}`);
  if (typeof f.minimum === 'number' || typeof f.maximum === 'number') {
    parts.push(`${f.minimum ?? '…'}..${f.maximum ?? '…'}`);
  }
  if (t === 'array') {
    const items = f.items as Json | undefined;
    parts[0] = `array of ${items?.type ?? 'any'}`;
  }
  if (t === 'object' && typeof f.maxProperties === 'number') {
    parts.push(`at most ${f.maxProperties} pairs`);
  }
  return parts.join(', ');
}

/** A table of an object schema's fields, then the schema itself, folded. */
function schemaBlock(schema: unknown): string {
  const s = schema as Json | undefined;
  const props = (s?.properties ?? {}) as Record<string, Json>;
  const required = new Set((s?.required as string[] | undefined) ?? []);
  const rows = Object.entries(props)
    .map(
      ([name, f]) =>
        `<tr><td><code>${esc(name)}</code></td><td>${esc(typeOf(f))}</td><td>${required.has(name) ? 'yes' : ''}</td><td>${prose(String(f.description ?? ''))}</td></tr>`,
    )
    .join('');
  const table = rows
    ? `<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>${rows}</table>`
    : '<p>(empty object)</p>';
  return `${table}<details><summary>JSON schema</summary><pre>${esc(JSON.stringify(schema, null, 2))}</pre></details>`;
}

export function renderReference(doc: Json): string {
  const info = doc.info as { title: string; version: string; description: string };
  const paths = doc.paths as Record<string, Record<string, Json>>;
  const ops: string[] = [];
  const toc: string[] = [];
  for (const [path, methods] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const id = String(op.operationId);
      toc.push(
        `<li><a href="#${esc(id)}"><code>${method.toUpperCase()} ${esc(path)}</code></a> ${esc(String(op.summary))}</li>`,
      );
      const body = (op.requestBody as { content: { 'application/json': { schema: unknown } } })
        ?.content['application/json'].schema;
      const responses = op.responses as Record<string, { description: string; content: Json }>;
      const rows = Object.entries(responses)
        .map(([status, r]) => `<tr><td>${esc(status)}</td><td>${esc(r.description)}</td></tr>`)
        .join('');
      const ok = Object.entries(responses).find(([s]) => s.startsWith('2'));
      const okSchema = (ok?.[1].content as { 'application/json': { schema: unknown } })?.[
        'application/json'
      ].schema;
      ops.push(`<section id="${esc(id)}">
<h2>${esc(id)}: <code>${method.toUpperCase()} ${esc(path)}</code></h2>
<p>${prose(String(op.description)).replace(/\n\n/g, '</p><p>')}</p>
${body ? `<h3>Request body</h3>${schemaBlock(body)}` : ''}
<h3>Response ${esc(ok?.[0] ?? '')}</h3>${schemaBlock(okSchema)}
<h3>Statuses</h3><table><tr><th>status</th><th>codes</th></tr>${rows}</table>
</section>`);
    }
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(info.title)} v${esc(info.version)}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
pre{background:#f5f5f5;padding:.75rem;overflow:auto;font-size:13px;white-space:pre-wrap}code{font-size:14px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
section{border-top:1px solid #ddd;margin-top:2rem}</style></head>
<body><h1>${esc(info.title)} <small>v${esc(info.version)}</small></h1>
<p>${prose(info.description)}</p>
<p>Machine-readable: <a href="openapi.json">openapi.json</a>.</p>
<h2>Operations</h2><ul>${toc.join('')}</ul>
${ops.join('\n')}
</body></html>
`;
}
