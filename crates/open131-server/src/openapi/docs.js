// Renders /openapi.json (crates/open131-server/src/openapi.rs) as a list of
// endpoints grouped by tag, each opening to its headers, body and answers,
// and the schemas; built as DOM text, no external asset.
'use strict';
(async () => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  };
  const doc = await (await fetch('/openapi.json')).json();
  $('info').textContent = ` ${doc.info.title} · OpenAPI ${doc.openapi} · ${Object.keys(doc.paths).length} paths`;
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [verb, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || 'other';
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push({ path, verb, op });
    }
  }
  const render = (filter) => {
    const box = $('groups');
    box.replaceChildren();
    for (const [tag, ops] of groups) {
      const shown = ops.filter((o) => o.path.includes(filter));
      if (!shown.length) continue;
      box.appendChild(el('h2', `${tag} (${shown.length})`));
      for (const { path, verb, op } of shown) {
        const d = el('details');
        const s = el('summary');
        s.appendChild(el('span', verb.toUpperCase(), 'verb'));
        s.appendChild(document.createTextNode(` ${path}`));
        d.appendChild(s);
        if (op.summary) d.appendChild(el('p', op.summary));
        const headers = (op.parameters || []).map((p) => `${p.in} ${p.name}${p.required ? ' (required)' : ''}`);
        if (headers.length) d.appendChild(el('p', headers.join(' · '), 'muted'));
        const answers = Object.entries(op.responses || {}).map(([code, r]) => {
          const ref = r.content && r.content['application/json'] && r.content['application/json'].schema.$ref;
          return `${code}: ${ref ? ref.split('/').pop() : r.description}`;
        });
        d.appendChild(el('p', `answers ${answers.join(' · ')}`, 'muted'));
        box.appendChild(d);
      }
    }
  };
  render('');
  $('filter').addEventListener('input', (e) => render(e.target.value.trim()));
  const schemas = $('schemas');
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    const d = el('details');
    d.appendChild(el('summary', name));
    d.appendChild(el('pre', JSON.stringify(schema, null, 2)));
    schemas.appendChild(d);
  }
  document.body.dataset.ready = 'yes';
})();
