// The playground: the aclc npm package in the page, checking as you type, formatting,
// explaining flows and showing a node's filter. No server: every call runs in WebAssembly.
import { init, AclcError } from '../bindings/js/index.js';

const $ = (id) => document.getElementById(id);
const editor = $('policy');
const inventoryBox = $('inventory');
let aclc = null;
let loaded = null; // the policy compiled against the inventory, for explain and node filters
let timer = 0;

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

/** Character offset of a 1-based line and column (columns count characters). */
function offsetOf(text, line, column) {
  let offset = 0;
  for (let l = 1; l < line; l++) {
    const next = text.indexOf('\n', offset);
    if (next < 0) return text.length;
    offset = next + 1;
  }
  return Math.min(text.length, offset + column - 1);
}

/** Underline each diagnostic's span in the backdrop behind the editor. */
function paintBackdrop(text, diagnostics) {
  const spans = diagnostics
    .map((d) => {
      const start = offsetOf(text, d.line, d.column);
      const end = Math.max(start + 1, offsetOf(text, d.end_line, d.end_column));
      return { start, end, severity: d.severity };
    })
    .sort((a, b) => a.start - b.start);
  let html = '';
  let at = 0;
  for (const s of spans) {
    if (s.start < at) continue; // overlapping: the first one wins
    html += escapeHtml(text.slice(at, s.start));
    html += `<mark class="${s.severity}">${escapeHtml(text.slice(s.start, s.end)) || ' '}</mark>`;
    at = s.end;
  }
  html += escapeHtml(text.slice(at)) + '\n';
  $('backdrop').innerHTML = html;
  syncScroll();
}

function syncScroll() {
  $('backdrop').scrollTop = editor.scrollTop;
  $('backdrop').scrollLeft = editor.scrollLeft;
}

function showDiagnostics(diagnostics) {
  const list = $('diagnostics');
  list.replaceChildren(
    ...diagnostics.map((d) => {
      const li = document.createElement('li');
      li.className = d.severity;
      li.innerHTML = `<b>${d.severity}</b> ${d.line}:${d.column} ${escapeHtml(d.message)} <code>${escapeHtml(d.code)}</code>`
        + (d.help ? `<br><small>${escapeHtml(d.help)}</small>` : '');
      li.addEventListener('click', () => {
        const at = offsetOf(editor.value, d.line, d.column);
        editor.focus();
        editor.setSelectionRange(at, offsetOf(editor.value, d.end_line, d.end_column));
      });
      return li;
    }),
  );
}

function inventory() {
  const text = inventoryBox.value.trim();
  return text === '' ? undefined : text;
}

/** Check the policy (with the inventory when there is one) and refresh everything. */
function refresh() {
  const text = editor.value;
  let result;
  try {
    result = aclc.check(text, { inventory: inventory() });
    $('inventory-status').textContent = inventory() ? 'inventory used' : '';
  } catch (e) {
    if (!(e instanceof AclcError) || e.kind !== 'invalid_inventory') throw e;
    $('inventory-status').textContent = e.message;
    result = aclc.check(text);
  }
  const errors = result.diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = result.diagnostics.length - errors;
  const status = $('status');
  status.dataset.state = result.valid ? 'valid' : 'invalid';
  status.textContent = result.valid
    ? `valid${warnings ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : ''}`
    : `${errors} error${errors === 1 ? '' : 's'}${warnings ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : ''}`;
  $('summary').textContent = `${result.diagnostics.length} diagnostic${result.diagnostics.length === 1 ? '' : 's'}`;
  showDiagnostics(result.diagnostics);
  paintBackdrop(text, result.diagnostics);
  reload(result.valid);
}

/** Recompile for explain and the node filter (only a valid policy with an inventory). */
function reload(valid) {
  if (loaded) {
    loaded.free();
    loaded = null;
  }
  const inv = inventory();
  if (valid && inv) {
    try {
      loaded = aclc.load(editor.value, inv);
    } catch (e) {
      if (!(e instanceof AclcError)) throw e;
    }
  }
  const select = $('node');
  const previous = select.value;
  select.replaceChildren(...(loaded ? loaded.nodes : []).map((n) => new Option(n, n)));
  if (loaded && loaded.nodes.includes(previous)) select.value = previous;
  $('explain').disabled = !loaded;
  showFilter();
  // An explanation of the previous policy would mislead: redo it, or say why not.
  if (loaded && $('explanation').textContent !== '') {
    explain();
  } else if (!loaded) {
    $('explanation').textContent = valid ? 'an inventory is needed to explain' : 'fix the policy to explain';
  }
}

function showFilter() {
  const node = $('node').value;
  if (!loaded || !node) {
    $('filter').textContent = loaded ? '' : 'a valid policy and an inventory are needed';
    return;
  }
  const map = loaded.nodeMap(node);
  $('filter').textContent = JSON.stringify(map.packet_filter_rules, null, 2);
}

function explain(event) {
  event?.preventDefault();
  const out = $('explanation');
  if (!loaded) return;
  const query = { src: $('src').value.trim(), dst: $('dst').value.trim() };
  if ($('proto').value.trim()) query.proto = $('proto').value.trim();
  try {
    const e = loaded.explain(query);
    const rules = e.allowed ? e.rules : e.misses;
    out.innerHTML = `<p class="verdict ${e.allowed ? 'allowed' : 'denied'}">${e.allowed ? 'allowed' : 'denied'}: ${escapeHtml(e.reason)}</p>`
      + (rules.length ? `<p>${e.allowed ? 'by' : 'nearest misses'}:</p><ul>${rules.map((r) => `<li>line ${r.line}: ${escapeHtml(r.text)}${r.why ? `<br>→ ${escapeHtml(r.why)}` : ''}</li>`).join('')}</ul>` : '')
      + (e.also?.length ? `<p>also allowed by (removing only the rule above would not deny it):</p><ul>${e.also.map((r) => `<li>line ${r.line}: ${escapeHtml(r.text)}</li>`).join('')}</ul>` : '');
  } catch (e) {
    if (!(e instanceof AclcError)) throw e;
    out.innerHTML = `<p class="verdict denied">${escapeHtml(e.message)}</p>`;
  }
}

function format() {
  try {
    editor.value = aclc.format(editor.value);
    refresh();
  } catch (e) {
    if (!(e instanceof AclcError)) throw e;
    $('status').textContent = `cannot format: ${e.message}`;
  }
}

async function main() {
  const [module, policy, inv] = await Promise.all([
    init(new URL('../bindings/js/aclc.wasm', import.meta.url)),
    fetch(new URL('../testdata/examples/policy.hujson', import.meta.url)).then((r) => (r.ok ? r.text() : '{}')),
    fetch(new URL('../testdata/examples/inventory.json', import.meta.url)).then((r) => (r.ok ? r.text() : '')),
  ]);
  aclc = module;
  editor.value = policy;
  inventoryBox.value = inv;
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 120);
  };
  editor.addEventListener('input', later);
  editor.addEventListener('scroll', syncScroll);
  inventoryBox.addEventListener('input', later);
  $('format').addEventListener('click', format);
  $('format').disabled = false;
  $('explain-form').addEventListener('submit', explain);
  $('node').addEventListener('change', showFilter);
  refresh();
  document.body.dataset.ready = 'true';
}

main().catch((error) => {
  $('status').textContent = `aclc failed to start: ${error.message}`;
  $('status').dataset.state = 'invalid';
});
