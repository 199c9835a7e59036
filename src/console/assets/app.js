// sluis console: the page. It asks the console's API (each call a call of
// the node's AuditService as the officer) and does the checking itself:
// an entry's inclusion proof (RFC 9162, SHA-256) and the checkpoint's
// signature (C2SP signed note, Ed25519) are verified here with WebCrypto,
// from the bytes the node sent.
'use strict';

const TOKEN = new URLSearchParams(location.search).get('token') || '';
const PAGE = 50;

const UI = {
  en: {
    title: "privacy officer's console", tab_log: 'Access log', tab_charts: 'Charts', tab_alerts: 'Alerts',
    tab_report: 'Subject report', language: 'Language', since: 'From (date or time, UTC)',
    until: 'Through (date) / until (time)', participant: 'Participant', role: 'Role', method: 'Method',
    purpose: 'Purpose', decision: 'Decision', case: 'Case', request_id: 'Request id', apply: 'Filter',
    at: 'Time (UTC)', released: 'Released', prev: 'Previous', next: 'Next', report_by: 'By',
    subject: 'Subject', make_report: 'Make report', print: 'Print / PDF',
    charts_hint: "Over the entries that match the access log's filters.",
    alerts_hint: "Patterns worth a look, over the entries that match the access log's filters.",
    entries: 'entries', from_index: 'from entry', none: 'No entries match these filters.',
    entry: 'Entry', field: 'Field', value: 'Value', basis: 'Why each category was released',
    category: 'Category', rules: 'Deciding rules', legal_basis: 'Legal basis (the rule’s, no consent needed)',
    consent: 'Consent', withheld: 'Withheld',
    basis_col: 'Basis',
    or_legal_basis: '— or a deciding rule’s legal basis (the record names the consents and rules of the whole request)', proof: 'Inclusion proof',
    proof_ok: 'Verified in this page: the entry is in the log the node signed',
    proof_bad: 'NOT verified', leaf_ok: 'the fields shown are the ones in the signed leaf',
    root_ok: 'the audit path leads to the checkpoint’s root', sig_ok: 'the checkpoint’s Ed25519 signature is valid',
    checkpoint: 'Checkpoint', tree_size: 'tree size', signed: 'signed', age: 'age', verifier_key: 'verifier key',
    integrity: 'Log', integrity_ok: 'latest checkpoint signature valid', integrity_bad: 'checkpoint signature NOT valid',
    entries_in_log: 'entries', ago: 'ago', close: 'Close',
    ch_day_decision: 'Accesses per day, by decision', ch_day_role: 'Accesses per day, by role',
    ch_withheld: 'Withheld categories, by reason', ch_top: 'Participants with the most reads (GetCase)',
    ch_handshakes: 'Refused handshakes per day', no_data: 'nothing in this range',
    al_rate: 'Far more distinct cases than usual', al_night: 'Reads at night', al_denials: 'Many denials in a row',
    al_special: 'Medical or safety information released', no_alerts: 'No alerts for these entries.',
    al_rate_why: (p, n, d, m) => `${p} read ${n} distinct cases on ${d}; the usual rate is ${m} per day.`,
    al_night_why: (p, t) => `${p} read case data at ${t} (Amsterdam time, between 22:00 and 06:00).`,
    al_denials_why: (p, n) => `${p} was refused ${n} times in a row.`,
    al_special_why: (p, c) => `${p} received ${c}.`,
    unknown: 'unknown', loading: 'loading…', n_entries: n => `${n} entries`,
    cut: (n, i, at) => `Counted over the first ${n.toLocaleString('en-GB')} matching entries only, through entry #${i} (${at}): more entries match these filters and are not in these figures. Narrow the time range or the filters to count the rest.`,
    em_more: 'Show more emergency accesses',
    emergency: 'Emergency rule, without consent — justification:', b_consent: 'Consent',
    b_legal: 'Legal basis:', em_title: 'Emergency accesses awaiting review',
    em_none: 'No emergency access awaits review.', em_hint: 'Each stays here until you close it with a verdict; your verdict and note are recorded in the access log and shown in the subject’s report.',
    em_by: (p, role, t) => `${p} (${role}) at ${t}`, em_just: 'Justification', em_released: 'Released',
    em_verdict: 'Verdict', em_justified: 'justified', em_not_justified: 'not justified', em_note: 'Note (one line, no names)',
    em_close: 'Close with this verdict', em_closed: 'Closed: recorded as entry',
    tab_statistics: 'Statistics', st_quarter: 'Quarter', st_own: "also each municipality's own tables",
    st_hint: 'The tables this node keeps for each quarter: at the quarter’s first request every table is computed once, for every scope, and kept unchanged, so these are what the monitor and the municipalities got, or will get if they ask. The SHA-256 is the one the access records of the requests a table answered name.',
    st_none: 'This node has published no statistics yet.', st_as_of: 'as of', st_sha: 'release SHA-256',
    st_for: { node: 'for the monitor: the node’s total', by_municipality: 'for the monitor: per municipality', own: 'for the municipality: its own cases' },
  },
  nl: {
    title: 'console van de functionaris gegevensbescherming', tab_log: 'Toegangslogboek', tab_charts: 'Grafieken',
    tab_alerts: 'Signalen', tab_report: 'Inzageoverzicht', language: 'Taal', since: 'Vanaf (datum of tijd, UTC)',
    until: 'Tot en met (datum) / tot (tijd)', participant: 'Deelnemer', role: 'Rol', method: 'Methode',
    purpose: 'Doel', decision: 'Besluit', case: 'Dossier', request_id: 'Verzoek-id', apply: 'Filteren',
    at: 'Tijd (UTC)', released: 'Verstrekt', prev: 'Vorige', next: 'Volgende', report_by: 'Op',
    subject: 'Betrokkene', make_report: 'Overzicht maken', print: 'Afdrukken / PDF',
    charts_hint: 'Over de regels die aan de filters van het toegangslogboek voldoen.',
    alerts_hint: 'Patronen om na te gaan, over de regels die aan de filters van het toegangslogboek voldoen.',
    entries: 'regels', from_index: 'vanaf regel', none: 'Geen regels voldoen aan deze filters.',
    entry: 'Regel', field: 'Veld', value: 'Waarde', basis: 'Waarom elke categorie werd verstrekt',
    category: 'Categorie', rules: 'Beslissende regels', legal_basis: 'Wettelijke grondslag (van de regel, geen toestemming nodig)',
    consent: 'Toestemming', withheld: 'Niet verstrekt',
    basis_col: 'Grondslag',
    or_legal_basis: '— of de wettelijke grondslag van een beslissende regel (de regel noemt toestemmingen en regels van het hele verzoek)', proof: 'Insluitingsbewijs',
    proof_ok: 'Gecontroleerd in deze pagina: de regel staat in het logboek dat het knooppunt ondertekende',
    proof_bad: 'NIET gecontroleerd', leaf_ok: 'de getoonde velden zijn die in het ondertekende blad',
    root_ok: 'het controlepad leidt naar de wortel van het controlepunt', sig_ok: 'de Ed25519-handtekening van het controlepunt is geldig',
    checkpoint: 'Controlepunt', tree_size: 'boomgrootte', signed: 'ondertekend', age: 'leeftijd', verifier_key: 'verificatiesleutel',
    integrity: 'Logboek', integrity_ok: 'handtekening laatste controlepunt geldig', integrity_bad: 'handtekening controlepunt NIET geldig',
    entries_in_log: 'regels', ago: 'geleden', close: 'Sluiten',
    ch_day_decision: 'Toegang per dag, naar besluit', ch_day_role: 'Toegang per dag, naar rol',
    ch_withheld: 'Niet verstrekte categorieën, naar reden', ch_top: 'Deelnemers die het meest lazen (GetCase)',
    ch_handshakes: 'Geweigerde verbindingen per dag', no_data: 'niets in deze periode',
    al_rate: 'Veel meer verschillende dossiers dan gewoonlijk', al_night: "Inzage 's nachts", al_denials: 'Veel weigeringen achter elkaar',
    al_special: 'Medische of veiligheidsinformatie verstrekt', no_alerts: 'Geen signalen voor deze regels.',
    al_rate_why: (p, n, d, m) => `${p} las ${n} verschillende dossiers op ${d}; gewoonlijk ${m} per dag.`,
    al_night_why: (p, t) => `${p} las dossiergegevens om ${t} (Amsterdamse tijd, tussen 22:00 en 06:00).`,
    al_denials_why: (p, n) => `${p} werd ${n} keer achter elkaar geweigerd.`,
    al_special_why: (p, c) => `${p} ontving ${c}.`,
    unknown: 'onbekend', loading: 'laden…', n_entries: n => `${n} regels`,
    cut: (n, i, at) => `Alleen de eerste ${n.toLocaleString('nl-NL')} regels die aan de filters voldoen zijn meegeteld, tot en met regel #${i} (${at}): er voldoen meer regels, die niet in deze cijfers zitten. Beperk de periode of de filters om de rest te tellen.`,
    em_more: 'Meer noodtoegang tonen',
    emergency: 'Noodregel, zonder toestemming — rechtvaardiging:', b_consent: 'Toestemming',
    b_legal: 'Wettelijke grondslag:', em_title: 'Noodtoegang die op beoordeling wacht',
    em_none: 'Er wacht geen noodtoegang op beoordeling.', em_hint: 'Elke noodtoegang blijft hier staan tot u hem sluit met een oordeel; uw oordeel en toelichting komen in het toegangslogboek en in het inzageoverzicht van de betrokkene.',
    em_by: (p, role, t) => `${p} (${role}) om ${t}`, em_just: 'Rechtvaardiging', em_released: 'Verstrekt',
    em_verdict: 'Oordeel', em_justified: 'gerechtvaardigd', em_not_justified: 'niet gerechtvaardigd', em_note: 'Toelichting (één regel, geen namen)',
    em_close: 'Sluiten met dit oordeel', em_closed: 'Gesloten: vastgelegd als regel',
    tab_statistics: 'Statistiek', st_quarter: 'Kwartaal', st_own: 'ook de eigen tabellen van elke gemeente',
    st_hint: 'De tabellen die dit knooppunt per kwartaal bewaart: bij de eerste vraag over een kwartaal wordt elke tabel voor elke reikwijdte één keer berekend en daarna niet meer gewijzigd. Dit is dus wat de monitor en de gemeenten kregen, of krijgen als zij erom vragen. De SHA-256 is die in de regels van het toegangslogboek van de verzoeken die een tabel beantwoordde.',
    st_none: 'Dit knooppunt heeft nog geen statistiek gepubliceerd.', st_as_of: 'berekend op', st_sha: 'SHA-256 van de publicatie',
    st_for: { node: 'voor de monitor: totaal van het knooppunt', by_municipality: 'voor de monitor: per gemeente', own: 'voor de gemeente: haar eigen dossiers' },
  },
};

// chartMax: the most matching entries charts and alerts count (the
// console's --chart-entries); cut: where the count stopped when more
// entries matched, null when it counted them all.
const state = { lang: 'en', words: null, starts: [0], next: null, filters: {}, cache: null, chartMax: 20000, cut: null };
const t = key => UI[state.lang][key];
const $ = sel => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const res = await fetch(`${path}?${q}`, { headers: { 'x-sluis-console-token': TOKEN } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

const w = (table, key) => (state.words && state.words[state.lang][table][key]) || key;
// The role shown for an entry's caller: a record without a role is the
// node's own step when it names a caller, else a caller not registered.
const roleOf = e => (e.role && e.role !== '-') ? e.role : ((e.caller && e.caller !== '-') ? 'node' : '-');

// ---- bytes, hashes, signatures ----

const b64 = s => Uint8Array.from(atob(s), c => c.charCodeAt(0));
const hex = b => Array.from(b, x => x.toString(16).padStart(2, '0')).join('');
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
};
const sha256 = async bytes => new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// RFC 9162 §2.1.3.2: the root an inclusion proof leads to.
async function rootFromProof(index, size, leafHash, path) {
  let fn = index, sn = size - 1, r = leafHash;
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(concat([1], p, r));
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      }
    } else {
      r = await sha256(concat([1], r, p));
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

// C2SP signed note: the body, a blank line, signature lines
// "— <name> <base64(key hash (4) ‖ signature (64))>"; verifier key
// "<name>+<key hash hex>+<base64(0x01 ‖ public key)>".
async function verifyNote(note, verifierKey) {
  const split = note.indexOf('\n\n');
  if (split < 0) return { ok: false, why: 'no blank line after the body' };
  const body = note.slice(0, split + 1);
  // name+hash+key: the key's base64 may itself hold '+'.
  const first = verifierKey.indexOf('+');
  const name = verifierKey.slice(0, first);
  const hashHex = verifierKey.slice(first + 1, first + 9);
  const keyB64 = verifierKey.slice(first + 10);
  const keyData = b64(keyB64);
  if (keyData[0] !== 1 || keyData.length !== 33) return { ok: false, why: 'not an Ed25519 verifier key' };
  const pub = keyData.slice(1);
  const enc = new TextEncoder();
  const keyHash = (await sha256(concat(enc.encode(name + '\n'), keyData))).slice(0, 4);
  if (hex(keyHash) !== hashHex) return { ok: false, why: 'the verifier key’s hash does not match it' };
  const key = await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
  for (const line of note.slice(split + 2).split('\n')) {
    const m = line.match(/^\u2014 (\S+) (\S+)$/);
    if (!m || m[1] !== name) continue;
    const sig = b64(m[2]);
    if (sig.length !== 68 || !equal(sig.slice(0, 4), keyHash)) continue;
    if (await crypto.subtle.verify({ name: 'Ed25519' }, key, sig.slice(4), enc.encode(body))) {
      const [origin, size, root] = body.split('\n');
      return { ok: true, origin, size: Number(size), root: b64(root) };
    }
  }
  return { ok: false, why: `no valid signature by ${name}: ${JSON.stringify(note)}` };
}

// The access record's canonical encoding (tlog/record.rs), read as far as
// the fields the page shows: a version byte, then strings and lists
// length-prefixed (u32 big-endian).
const CATEGORIES = [null, 'identity', 'residence_procedure', 'shelter', 'guidance', 'perspective', 'medical', 'safety', 'outcome'];
function decodeLeaf(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder('utf-8', { fatal: true });
  let o = 1;
  const u32 = () => { const v = dv.getUint32(o); o += 4; return v; };
  const str = () => { const n = u32(); const s = dec.decode(bytes.subarray(o, o + n)); o += n; return s; };
  const opt = () => (bytes[o++] === 0 ? null : str());
  const cats = () => { const n = u32(); const c = []; for (let i = 0; i < n; i++) c.push(CATEGORIES[bytes[o++]]); return c; };
  const r = { version: bytes[0], from_node: null };
  r.request_id = str();
  r.at = new Date(Number(dv.getBigInt64(o))).toISOString(); o += 8;
  r.caller = str(); r.role = str(); r.peer_fingerprint = opt(); r.actor_hash = opt();
  r.method = str(); r.case_id = opt(); r.subject = opt(); r.purpose = opt();
  r.asked = cats(); r.released = cats();
  const nw = u32(); r.withheld = [];
  for (let i = 0; i < nw; i++) { const c = CATEGORIES[bytes[o++]]; r.withheld.push({ category: c, reason: str() }); }
  r.decision = str(); r.status = str(); r.detail = str();
  const list = () => { const n = u32(); const l = []; for (let i = 0; i < n; i++) l.push(str()); return l; };
  r.rules = list(); r.consents = list();
  r.bases = [];
  if (r.version < 5) return r;
  // Version 5: past the subjects, the LDV fields and the policy's hash to
  // each released category's basis, which the page shows.
  list();
  const skip = n => { o += n; };
  if (bytes[o++] === 1) {
    skip(16 + 8);
    if (bytes[o++] === 1) { skip(16 + 8); str(); }
    opt(); skip(1 + 8);
    if (bytes[o++] === 1) { skip(1); skip(u32()); }
  }
  if (bytes[o++] === 1) skip(32);
  const KINDS = [null, 'consent', 'legal_basis', 'emergency'];
  const nb = u32();
  for (let i = 0; i < nb; i++) {
    const category = CATEGORIES[bytes[o++]];
    const basis = KINDS[bytes[o++]];
    r.bases.push({ category, basis, rules: list(), text: str() });
  }
  // The review, then (version 6) the federation node the call came from.
  if (bytes[o++] === 1) { str(); skip(1); str(); }
  if (r.version >= 6) r.from_node = str();
  return r;
}

const SHOWN = ['request_id', 'at', 'caller', 'role', 'peer_fingerprint', 'actor_hash', 'method', 'case_id', 'subject',
  'purpose', 'asked', 'released', 'withheld', 'decision', 'status', 'detail', 'rules', 'consents', 'from_node'];

// ---- integrity at a glance ----

async function integrity() {
  const box = $('#integrity');
  try {
    const cp = await api('/api/checkpoint');
    const v = await verifyNote(cp.note, cp.verifier_key);
    box.className = 'integrity ' + (v.ok && v.size === cp.size ? 'ok' : 'bad');
    box.replaceChildren(
      el('strong', {}, `${t('integrity')} ${cp.node}: `),
      `${cp.size} ${t('entries_in_log')}, ${t('checkpoint')} ${t('signed')} ${cp.signed_at} (${age(cp.age_seconds)} ${t('ago')}) — `,
      el('span', { id: 'integrity-verdict', 'data-why': v.why || '' }, v.ok && v.size === cp.size ? t('integrity_ok') : t('integrity_bad')));
  } catch (e) {
    box.className = 'integrity bad';
    box.textContent = e.message;
  }
}

function age(s) {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

// ---- the access log ----

function readFilters() {
  const f = {};
  for (const [k, v] of new FormData($('#filters'))) if (v.trim()) f[k] = v.trim();
  return f;
}

async function loadLog(start) {
  $('#log-error').textContent = '';
  const tbody = $('#log tbody');
  try {
    const page = await api('/api/entries', { ...state.filters, start, limit: PAGE });
    state.next = page.next;
    tbody.replaceChildren(...page.entries.map(row));
    if (!page.entries.length) tbody.append(el('tr', {}, el('td', { colspan: 9 }, t('none'))));
    $('#page-info').textContent = `${t('from_index')} ${start} · ${t('n_entries')(page.entries.length)}`;
    $('#prev').disabled = state.starts.length < 2;
    $('#next').disabled = page.next === null || page.next === undefined;
  } catch (e) {
    tbody.replaceChildren();
    $('#log-error').textContent = e.message;
  }
}

function row(e) {
  return el('tr', { class: `d-${e.decision}`, 'data-index': e.index, onclick: () => openEntry(e.index) },
    el('td', {}, e.index), el('td', { class: 'mono' }, e.at), el('td', {}, e.caller),
    el('td', {}, w('roles', roleOf(e))), el('td', {}, e.method), el('td', {}, e.purpose || ''),
    el('td', { class: 'mono small' }, e.case_id || ''), el('td', {}, w('decisions', e.decision)),
    el('td', {}, e.released.map(c => w('categories', c)).join(', ')));
}

async function openEntry(index) {
  showTab('log');
  const box = $('#entry');
  box.hidden = false;
  box.replaceChildren(el('p', {}, t('loading')));
  let d;
  try {
    d = await api('/api/entry', { index });
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, e.message));
    return;
  }
  const e = d.entry;
  const fields = el('table', { class: 'fields' },
    el('thead', {}, el('tr', {}, el('th', {}, t('field')), el('th', {}, t('value')))),
    el('tbody', {}, ['index', ...SHOWN, 'subjects'].map(k => el('tr', {}, el('th', {}, k), el('td', { class: 'mono' }, show(e[k]))))));
  const basis = el('table', { class: 'basis', id: 'basis' },
    el('thead', {}, el('tr', {}, el('th', {}, t('category')), el('th', {}, t('basis_col')), el('th', {}, t('rules')))),
    el('tbody', {}, d.basis.map(b => el('tr', { 'data-category': b.category },
      el('td', {}, w('categories', b.category)),
      el('td', { 'data-basis': b.basis }, basisWords(b)),
      el('td', { class: 'mono' }, b.rules.join(', '))))),
    e.withheld.map(x => el('tr', { class: 'withheld' }, el('td', {}, w('categories', x.category)),
      el('td', {}, `${t('withheld')}: ${w('reasons', x.reason)}`), el('td', {}, ''))));
  const verdict = el('div', { id: 'proof-verdict', class: 'verdict' }, t('loading'));
  box.replaceChildren(
    el('div', { class: 'entry-head' }, el('h2', {}, `${t('entry')} #${e.index}`),
      el('button', { class: 'no-print', onclick: () => { box.hidden = true; } }, t('close'))),
    el('h3', {}, t('basis')), basis,
    el('h3', {}, t('proof')), verdict,
    el('p', { class: 'mono small' }, `${t('tree_size')} ${d.proof.tree_size} · ${t('checkpoint')} ${t('signed')} ${d.checkpoint.signed_at}`),
    el('pre', { class: 'note' }, d.checkpoint.note),
    fields);
  box.scrollIntoView();
  const checks = await verifyEntry(d);
  const ok = checks.leaf && checks.root && checks.sig;
  verdict.className = 'verdict ' + (ok ? 'ok' : 'bad');
  verdict.setAttribute('data-verified', ok ? 'yes' : 'no');
  verdict.replaceChildren(el('strong', {}, ok ? t('proof_ok') : t('proof_bad')),
    el('ul', {}, [['leaf', 'leaf_ok'], ['root', 'root_ok'], ['sig', 'sig_ok']]
      .map(([k, label]) => el('li', { class: checks[k] ? 'ok' : 'bad' }, (checks[k] ? '✓ ' : '✗ ') + t(label)))));
}

// A category's basis in words: exact from record version 5 on (`text`
// is the consent id, the legal basis or the justification), as far as
// the record says before.
function basisWords(b) {
  if (b.exact) {
    if (b.basis === 'emergency') return `${t('emergency')} “${b.text}”`;
    if (b.basis === 'legal_basis') return `${t('b_legal')} ${b.text}`;
    return `${t('b_consent')} ${b.text}`;
  }
  return b.basis === 'legal_basis' ? t('legal_basis')
    : b.basis === 'consent' ? `${t('consent')} ${b.consents.join(', ')}`
      : `${t('consent')} ${b.consents.join(', ')} ${t('or_legal_basis')}`;
}

function show(v) {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.map(x => (typeof x === 'object' ? `${x.category}:${x.reason}` : x)).join(', ');
  return String(v);
}

// The checks the page makes: the fields shown are the leaf's; the leaf's
// hash and the audit path give the checkpoint's root; the checkpoint is
// signed by the node's key.
async function verifyEntry(d) {
  const checks = { leaf: false, root: false, sig: false };
  try {
    const leaf = b64(d.proof.leaf);
    const decoded = decodeLeaf(leaf);
    const basisOf = bs => JSON.stringify(bs.map(b => [b.category, b.basis, b.rules, b.text]));
    checks.leaf = SHOWN.every(k => show(decoded[k]) === show(d.entry[k]))
      && basisOf(decoded.bases) === basisOf(d.basis.filter(b => b.exact));
    const leafHash = await sha256(concat([0], leaf));
    const root = await rootFromProof(d.proof.index, d.proof.tree_size, leafHash, d.proof.hashes.map(b64));
    const note = await verifyNote(d.checkpoint.note, d.verifier_key);
    checks.sig = note.ok;
    checks.root = note.ok && root !== null && note.size === d.proof.tree_size && equal(root, note.root);
  } catch (e) {
    console.error(e);
  }
  return checks;
}

// ---- charts and alerts, over the filtered entries ----

async function allFiltered() {
  if (state.cache) return state.cache;
  const out = [];
  let start = 0;
  let more = false;
  while (out.length < state.chartMax) {
    const page = await api('/api/entries', { ...state.filters, start, limit: Math.min(10000, state.chartMax - out.length) });
    out.push(...page.entries);
    more = page.next !== null && page.next !== undefined;
    if (!more) break;
    start = page.next;
  }
  // Stopped at the bound with entries left: the figures are of a part,
  // and the page must say so.
  const last = out[out.length - 1];
  state.cut = more && last ? { n: out.length, index: last.index, at: last.at } : null;
  state.cache = out;
  return out;
}

// The notice that charts or alerts were counted over a part of the
// matching entries; none when they were counted over all.
function cutNotice(id) {
  const c = state.cut;
  return c ? [el('p', { class: 'cut', id, role: 'status' }, t('cut')(c.n, c.index, c.at))] : [];
}

const day = at => at.slice(0, 10);
function countBy(items, key) {
  const m = new Map();
  for (const i of items) { const k = key(i); if (k !== null) m.set(k, (m.get(k) || 0) + 1); }
  return m;
}

function stacked(title, id, entries, seriesOf, label) {
  const days = [...new Set(entries.map(e => day(e.at)))].sort();
  const series = [...new Set(entries.map(seriesOf))].sort();
  const W = 640, H = 220, pad = 30, bw = Math.max(4, Math.min(60, (W - pad * 2) / Math.max(1, days.length) - 6));
  const totals = days.map(d => entries.filter(e => day(e.at) === d).length);
  const max = Math.max(1, ...totals);
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H + 60}`, role: 'img', 'aria-label': title, id });
  days.forEach((d, i) => {
    let y = H;
    const x = pad + i * (bw + 6);
    series.forEach((s, si) => {
      const n = entries.filter(e => day(e.at) === d && seriesOf(e) === s).length;
      if (!n) return;
      const h = (n / max) * (H - pad);
      y -= h;
      const r = svgEl('rect', { x, y, width: bw, height: h, class: `s${si % 8}` });
      r.append(svgEl('title', {}, `${d} · ${label(s)}: ${n}`));
      svg.append(r);
    });
    svg.append(svgEl('text', { x: x + bw / 2, y: H + 14, class: 'axis', 'text-anchor': 'middle' }, d.slice(5)));
    svg.append(svgEl('text', { x: x + bw / 2, y: y - 3, class: 'axis', 'text-anchor': 'middle' }, totals[i]));
  });
  series.forEach((s, si) => {
    const x = pad + (si % 4) * 150, y = H + 32 + Math.floor(si / 4) * 16;
    svg.append(svgEl('rect', { x, y: y - 9, width: 10, height: 10, class: `s${si % 8}` }));
    svg.append(svgEl('text', { x: x + 14, y, class: 'legend' }, label(s)));
  });
  return figure(title, days.length ? svg : null);
}

function hbars(title, id, pairs) {
  const W = 700, row = 22, left = 330;
  const max = Math.max(1, ...pairs.map(p => p[1]));
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${pairs.length * row + 10}`, role: 'img', 'aria-label': title, id });
  pairs.forEach(([label, n], i) => {
    const y = 5 + i * row;
    svg.append(svgEl('text', { x: left - 6, y: y + 14, class: 'legend', 'text-anchor': 'end' }, label));
    svg.append(svgEl('rect', { x: left, y, width: ((W - left - 40) * n) / max, height: row - 6, class: `s${i % 8}` }));
    svg.append(svgEl('text', { x: left + ((W - left - 40) * n) / max + 4, y: y + 14, class: 'axis' }, n));
  });
  return figure(title, pairs.length ? svg : null);
}

function svgEl(tag, attrs = {}, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function figure(title, svg) {
  return el('figure', { class: 'chart' }, el('figcaption', {}, title), svg || el('p', { class: 'hint' }, t('no_data')));
}

async function charts() {
  const box = $('#charts');
  box.replaceChildren(el('p', {}, t('loading')));
  try {
    const all = await allFiltered();
    const withheld = all.flatMap(e => e.withheld.map(x => x.reason));
    const reads = all.filter(e => e.method === 'GetCase');
    const handshakes = all.filter(e => e.method === 'tls.handshake' || e.decision === 'handshake_failed');
    box.replaceChildren(
      ...cutNotice('charts-cut'),
      stacked(t('ch_day_decision'), 'chart-decision', all, e => e.decision, s => w('decisions', s)),
      stacked(t('ch_day_role'), 'chart-role', all, e => e.role, s => w('roles', s)),
      hbars(t('ch_withheld'), 'chart-withheld', [...countBy(withheld, r => r)].sort((a, b) => b[1] - a[1]).map(([r, n]) => [w('reasons', r), n])),
      hbars(t('ch_top'), 'chart-top', [...countBy(reads, e => e.caller)].sort((a, b) => b[1] - a[1]).slice(0, 10)),
      stacked(t('ch_handshakes'), 'chart-handshakes', handshakes, e => e.decision, s => w('decisions', s)));
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, e.message));
  }
}

const median = xs => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const amsterdamHour = at => Number(new Intl.DateTimeFormat('en-GB', { hour: '2-digit', hourCycle: 'h23', timeZone: 'Europe/Amsterdam' }).format(new Date(at)));

// Each alert: what, why in words, and the entries it rests on.
function findAlerts(all) {
  const alerts = [];
  const reads = all.filter(e => e.method === 'GetCase' && e.case_id);
  // Distinct cases per participant and day, against its own other days
  // or, without history, against the other participants that day.
  const perDay = new Map();
  for (const e of reads) {
    const k = `${e.caller}\u0000${day(e.at)}`;
    if (!perDay.has(k)) perDay.set(k, { caller: e.caller, day: day(e.at), cases: new Set(), entries: [] });
    const v = perDay.get(k);
    v.cases.add(e.case_id);
    v.entries.push(e.index);
  }
  const groups = [...perDay.values()];
  for (const g of groups) {
    const own = groups.filter(o => o.caller === g.caller && o.day !== g.day).map(o => o.cases.size);
    const peers = groups.filter(o => o.caller !== g.caller && o.day === g.day).map(o => o.cases.size);
    const usual = own.length ? median(own) : median(peers);
    if (g.cases.size >= 5 && g.cases.size >= 3 * Math.max(1, usual)) {
      alerts.push({ kind: 'al_rate', why: t('al_rate_why')(g.caller, g.cases.size, g.day, usual), entries: g.entries });
    }
  }
  for (const e of reads.filter(e => e.released.length && (amsterdamHour(e.at) >= 22 || amsterdamHour(e.at) < 6))) {
    alerts.push({ kind: 'al_night', why: t('al_night_why')(e.caller, e.at), entries: [e.index] });
  }
  const runs = new Map();
  for (const e of all) {
    const r = runs.get(e.caller) || { n: 0, entries: [] };
    if (e.decision === 'denied') { r.n += 1; r.entries.push(e.index); } else { flush(e.caller, r); r.n = 0; r.entries = []; }
    runs.set(e.caller, r);
  }
  for (const [caller, r] of runs) flush(caller, r);
  function flush(caller, r) {
    if (r.n >= 5) alerts.push({ kind: 'al_denials', why: t('al_denials_why')(caller, r.n), entries: [...r.entries] });
  }
  for (const e of all.filter(e => e.released.some(c => c === 'medical' || c === 'safety'))) {
    const c = e.released.filter(c => c === 'medical' || c === 'safety').map(c => w('categories', c)).join(', ');
    alerts.push({ kind: 'al_special', why: t('al_special_why')(e.caller, c), entries: [e.index] });
  }
  return alerts;
}

// Emergency accesses the node holds open until an officer closes them with
// a verdict: over the whole log, not only the filtered entries.
async function emergencies() {
  const box = $('#emergency');
  box.replaceChildren(el('p', {}, t('loading')));
  try {
    const { alerts, next_page_token: next } = await api('/api/emergency');
    const head = [el('h2', {}, t('em_title')), el('p', { class: 'hint' }, t('em_hint'))];
    if (!alerts.length) { box.replaceChildren(...head, el('p', { id: 'no-emergency' }, t('em_none'))); return; }
    box.replaceChildren(...head, ...alerts.map(emergencyAlert), ...moreEmergencies(box, next));
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, e.message));
  }
}

// One page of open alerts at a time (the console's bound); a button for
// the next page when there is one.
function moreEmergencies(box, token) {
  if (!token) return [];
  const button = el('button', { type: 'button', id: 'emergency-more', class: 'no-print' }, t('em_more'));
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const page = await api('/api/emergency', { page_token: token });
      button.replaceWith(...page.alerts.map(emergencyAlert), ...moreEmergencies(box, page.next_page_token));
    } catch (e) {
      button.replaceWith(el('p', { class: 'error' }, e.message));
    }
  });
  return [button];
}

function emergencyAlert(a) {
  const e = a.access;
  const note = el('input', { name: 'note', maxlength: '500', autocomplete: 'off' });
  const verdict = el('select', { name: 'verdict' },
    el('option', { value: 'justified' }, t('em_justified')),
    el('option', { value: 'not_justified' }, t('em_not_justified')));
  const msg = el('p', { class: 'error', role: 'alert' });
  const form = el('form', { class: 'close-alert no-print', 'data-request-id': e.request_id },
    el('label', {}, el('span', {}, t('em_verdict')), verdict),
    el('label', {}, el('span', {}, t('em_note')), note),
    el('button', { type: 'submit' }, t('em_close')), msg);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    msg.textContent = '';
    try {
      const body = new URLSearchParams({ request_id: e.request_id, verdict: verdict.value, note: note.value });
      const res = await fetch('/api/emergency/close', { method: 'POST', headers: { 'x-sluis-console-token': TOKEN, 'content-type': 'application/x-www-form-urlencoded' }, body });
      const r = await res.json();
      if (!res.ok) throw new Error(r.error || res.statusText);
      form.replaceWith(el('p', { class: 'closed' }, `${t('em_closed')} #${r.review ? r.review.index : ''}`));
      state.cache = null;
    } catch (err) { msg.textContent = err.message; }
  });
  return el('div', { class: 'alert emergency', 'data-kind': 'emergency', 'data-request-id': e.request_id },
    el('strong', {}, t('em_by')(e.caller, w('roles', roleOf(e)), e.at)),
    el('p', {}, `${t('em_released')}: ${e.released.map(c => w('categories', c)).join(', ')}`),
    el('p', { class: 'justification' }, `${t('em_just')}: “${a.justification || ''}”`),
    el('p', { class: 'links' }, el('a', { href: '#', class: 'entry-link', onclick: ev => { ev.preventDefault(); openEntry(e.index); } }, `#${e.index}`)),
    form);
}

async function alerts() {
  emergencies();
  const box = $('#alerts');
  box.replaceChildren(el('p', {}, t('loading')));
  try {
    const list = findAlerts(await allFiltered());
    if (!list.length) { box.replaceChildren(...cutNotice('alerts-cut'), el('p', {}, t('no_alerts'))); return; }
    box.replaceChildren(...cutNotice('alerts-cut'), ...list.map(a => el('div', { class: `alert ${a.kind}`, 'data-kind': a.kind },
      el('strong', {}, t(a.kind)), el('p', {}, a.why),
      el('p', { class: 'links' }, a.entries.slice(0, 50).map(i => el('a', { href: '#', class: 'entry-link', onclick: ev => { ev.preventDefault(); openEntry(i); } }, `#${i}`))))));
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, e.message));
  }
}

// ---- the subject access report ----

async function report() {
  const f = new FormData($('#report-form'));
  const value = (f.get('value') || '').trim();
  $('#report-error').textContent = '';
  const out = $('#report');
  out.replaceChildren();
  if (!value) return;
  try {
    const r = await api('/api/report', { [f.get('kind')]: value, lang: state.lang });
    const [head, ...rest] = r.text.split('\n\n');
    out.replaceChildren(
      el('pre', { class: 'report-head' }, head),
      el('ol', { class: 'report-lines' }, r.entries.map(e => el('li', { 'data-index': e.index, 'data-node': e.node },
        el('span', { class: 'mono' }, e.at), ' ', el('span', { class: 'node' }, e.node), ' ',
        el('span', { class: 'pos' }, `#${e.index}`), ' ', e.summary))),
      el('p', { class: 'report-foot' }, rest.join('\n\n').trim().split('\n').pop()));
  } catch (e) {
    $('#report-error').textContent = e.message;
  }
}

// ---- statistics: the releases the node published ----

// A heading's, title's or note's words in the page's language.
const inLang = v => (v && typeof v === 'object') ? (v[state.lang] || v.en) : (v || '');

// One release's chart: a bar per row and column of its first block (the
// total where the table has blocks), drawn to scale for counts; a "< 10"
// or an "x" is no count, so it gets a marker and its sign, never a length.
// The bars leave room on the right for the longest label, so the largest
// bar's label is never cut off.
function statChart(r) {
  const cols = r.columns.length, rows = r.rows.length;
  const block = Math.max(0, r.blocks.findIndex(b => b.key === 'total'));
  const W = 760, bar = 16, gap = 8, left = 260, CHAR = 7.5;
  const counts = r.figures.filter(f => f.kind === 'count').map(f => f.count);
  const max = Math.max(1, ...counts);
  const labelOf = (c, f) => cols > 1 ? `${inLang(r.columns[c].words)}: ${f.shown}` : f.shown;
  let longest = 0;
  for (let i = 0; i < rows; i++) for (let c = 0; c < cols; c++) {
    longest = Math.max(longest, labelOf(c, r.figures[(block * rows + i) * cols + c]).length);
  }
  const room = Math.min(W - left - 100, Math.ceil(longest * CHAR) + 12);
  const H = rows * (cols * bar + gap) + 10;
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': inLang(r.title), class: 'stat-chart' });
  for (let i = 0; i < rows; i++) {
    const y0 = 5 + i * (cols * bar + gap);
    svg.append(svgEl('text', { x: left - 6, y: y0 + bar - 4, class: 'legend', 'text-anchor': 'end' }, inLang(r.rows[i].words)));
    for (let c = 0; c < cols; c++) {
      const f = r.figures[(block * rows + i) * cols + c];
      const y = y0 + c * bar;
      const label = labelOf(c, f);
      if (f.kind === 'count') {
        const width = ((W - left - room) * f.count) / max;
        const rect = svgEl('rect', { x: left, y, width, height: bar - 3, class: `bar s${c % 8}` });
        rect.append(svgEl('title', {}, `${inLang(r.rows[i].words)} · ${label}`));
        svg.append(rect, svgEl('text', { x: left + width + 4, y: y + bar - 5, class: 'axis' }, label));
      } else {
        svg.append(svgEl('rect', { x: left, y, width: 6, height: bar - 3, class: `mark ${f.kind}` }),
          svgEl('text', { x: left + 10, y: y + bar - 5, class: 'axis' }, label));
      }
    }
  }
  return svg;
}

function statTable(r) {
  const rows = r.rows.length, cols = r.columns.length;
  return r.blocks.map((b, bi) => el('table', { class: 'stat-table' },
    inLang(b.words) ? el('caption', {}, inLang(b.words)) : '',
    el('thead', {}, el('tr', {}, el('th', {}, ''), r.columns.map(c => el('th', {}, inLang(c.words))))),
    el('tbody', {}, r.rows.map((row, ri) => el('tr', {}, el('th', {}, inLang(row.words)),
      r.columns.map((_, ci) => {
        const f = r.figures[(bi * rows + ri) * cols + ci];
        return el('td', { class: `f-${f.kind}` }, f.shown);
      }))))));
}

async function statistics() {
  const box = $('#statistics');
  $('#stats-error').textContent = '';
  box.replaceChildren(el('p', {}, t('loading')));
  try {
    const d = await api('/api/statistics', { quarter: $('#stats-quarter').value, own: $('#stats-own').checked ? 1 : '' });
    const s = $('#stats-quarter');
    s.replaceChildren(...d.quarters.map(q => el('option', { value: q }, q)));
    s.value = d.quarter;
    if (!d.releases.length) { box.replaceChildren(el('p', { class: 'hint' }, t('st_none'))); return; }
    // Each release with its own notes: one whose every figure is "x" says
    // so instead of the legend of "< 10" and "x".
    box.replaceChildren(...d.releases.map(r => el('article', { class: 'release', 'data-sha256': r.sha256 },
      el('h3', {}, `${inLang(r.title)}, ${r.quarter}`),
      el('p', { class: 'hint' }, `${t('st_for')[r.breakdown] || r.breakdown} — ${inLang(r.scope_words)}`),
      el('p', { class: 'provenance' }, `${t('st_as_of')} ${r.as_of} · ${t('st_sha')} `, el('code', {}, r.sha256)),
      statChart(r),
      statTable(r),
      el('p', { class: 'legend-text' }, inLang(r.legend)))));
  } catch (e) {
    box.replaceChildren();
    $('#stats-error').textContent = e.message;
  }
}

// ---- tabs, language, start ----

function showTab(name) {
  for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== `tab-${name}`;
  for (const b of document.querySelectorAll('nav button')) b.classList.toggle('active', b.dataset.tab === name);
  if (name === 'charts') charts();
  if (name === 'alerts') alerts();
  if (name === 'statistics') statistics();
}

function translate() {
  document.documentElement.lang = state.lang;
  for (const e of document.querySelectorAll('[data-t]')) e.textContent = t(e.dataset.t);
  for (const [sel, table] of [['select[name=role]', 'roles'], ['select[name=decision]', 'decisions']]) {
    const s = $(sel);
    const keep = s.value;
    s.replaceChildren(el('option', { value: '' }, ''), ...Object.keys(state.words.en[table]).filter(k => k !== '-' && k !== 'node')
      .map(k => el('option', { value: k }, `${w(table, k)} (${k})`)));
    s.value = keep;
  }
}

async function start() {
  state.words = await api('/api/words');
  state.chartMax = (await api('/api/settings')).chart_entries;
  translate();
  for (const b of document.querySelectorAll('nav button')) b.addEventListener('click', () => showTab(b.dataset.tab));
  $('#lang').addEventListener('change', () => {
    state.lang = $('#lang').value;
    translate();
    integrity();
    loadLog(state.starts[state.starts.length - 1]);
    if ($('#report').childElementCount) report();
    if (!$('#tab-statistics').hidden) statistics();
    if (!$('#tab-charts').hidden) charts();
    if (!$('#tab-alerts').hidden) alerts();
  });
  $('#filters').addEventListener('submit', ev => {
    ev.preventDefault();
    state.filters = readFilters();
    state.cache = null;
    state.starts = [0];
    $('#entry').hidden = true;
    loadLog(0);
  });
  $('#next').addEventListener('click', () => { state.starts.push(state.next); loadLog(state.next); });
  $('#prev').addEventListener('click', () => { state.starts.pop(); loadLog(state.starts[state.starts.length - 1]); });
  $('#report-form').addEventListener('submit', ev => { ev.preventDefault(); report(); });
  $('#print').addEventListener('click', () => window.print());
  $('#stats-quarter').addEventListener('change', () => statistics());
  $('#stats-own').addEventListener('change', () => statistics());
  integrity();
  loadLog(0);
}

start().catch(e => { document.body.prepend(el('p', { class: 'error' }, e.message)); });
