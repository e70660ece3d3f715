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

function schemaBlock(schema: unknown): string {
  return `<pre>${esc(JSON.stringify(schema, null, 2))}</pre>`;
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
<p>${esc(String(op.description)).replace(/\n\n/g, '</p><p>')}</p>
${body ? `<h3>Request body</h3>${schemaBlock(body)}` : ''}
<h3>Response ${esc(ok?.[0] ?? '')}</h3>${schemaBlock(okSchema)}
<h3>Statuses</h3><table><tr><th>status</th><th>codes</th></tr>${rows}</table>
</section>`);
    }
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(info.title)} v${esc(info.version)}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
pre{background:#f5f5f5;padding:.75rem;overflow:auto;font-size:13px}code{font-size:14px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
section{border-top:1px solid #ddd;margin-top:2rem}</style></head>
<body><h1>${esc(info.title)} <small>v${esc(info.version)}</small></h1>
<p>${esc(info.description)}</p>
<p>Machine-readable: <a href="openapi.json">openapi.json</a>.</p>
<h2>Operations</h2><ul>${toc.join('')}</ul>
${ops.join('\n')}
</body></html>
`;
}
