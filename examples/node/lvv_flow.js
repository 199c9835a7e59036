#!/usr/bin/env node
// The whole LVV flow against a sluis node, from Node.js, as an agency
// back-end runs it: @grpc/grpc-js, with the protos of proto/sluis/v1 loaded at
// run time (@grpc/proto-loader), over mutual TLS with the dev participants'
// certificates, every call gzip-compressed.
//
//  1. the municipality registers a case and retries the call with the same
//     request_id: the same case, registered once (AIP-155);
//  2. a mistake (a date of birth in the future) comes back as
//     INVALID_ARGUMENT with google.rpc.Status details: a BadRequest naming
//     the field and an ErrorInfo reason;
//  3. the municipality records the migrant's consent for the NGO;
//  4. the NGO reads the case for its stated purpose, and finds it among the
//     cases visible to it (paging until next_page_token is empty);
//  5. the municipality records the withdrawal (retried safely), and the
//     NGO's next read is withheld;
//  6. the privacy officer queries the access log for the case and checks an
//     inclusion proof of the NGO's read offline (RFC 6962 hashing).
//
//   node lvv_flow.js --node localhost:7443 --pki sluis-dev/pki
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');
const googleProtos = require('google-proto-files');

const PROTO_DIR = path.join(__dirname, '..', '..', 'proto');
const MUNICIPALITY = 'gemeente-utrecht';
const NGO = 'ngo-vluchtelingenwerk';
const OFFICER = 'fg-utrecht';

function args() {
  const out = { node: 'localhost:7443', pki: 'sluis-dev/pki' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in out) || argv[i + 1] === undefined) {
      throw new Error(`usage: node lvv_flow.js [--node HOST:PORT] [--pki DIR]`);
    }
    out[key] = argv[i + 1];
  }
  return out;
}

const api = grpc.loadPackageDefinition(
  protoLoader.loadSync(
    ['case', 'consent', 'audit', 'stats', 'errors'].map((p) => `sluis/v1/${p}.proto`),
    { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] },
  ),
).sluis.v1;

// google.rpc.Status and its details, to read what an error says.
const rpcRoot = new protobuf.Root();
rpcRoot.resolvePath = (_origin, target) =>
  target.startsWith('google/rpc/') ? path.join(path.dirname(googleProtos.getProtoPath('rpc', 'status.proto')), '..', '..', target) : target;
rpcRoot.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
const Status = rpcRoot.lookupType('google.rpc.Status');

/** The details of a failed call: { errorInfo, badRequest }. */
function errorDetails(err) {
  const bin = err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  const out = {};
  if (!bin) return out;
  for (const any of Status.decode(bin).details) {
    const name = any.type_url.split('/').pop();
    const type = rpcRoot.lookupType(name);
    if (name === 'google.rpc.ErrorInfo') out.errorInfo = type.decode(any.value);
    if (name === 'google.rpc.BadRequest') out.badRequest = type.decode(any.value);
  }
  return out;
}

function expect(ok, what) {
  if (!ok) throw new Error(`FAILED: ${what}`);
  console.log(`   ok: ${what}`);
}

function clients(node, pki, who) {
  const read = (f) => fs.readFileSync(path.join(pki, f));
  const creds = grpc.credentials.createSsl(read('ca.pem'), read(`clients/${who}.key`), read(`clients/${who}.pem`));
  const options = { 'grpc.default_compression_algorithm': 2 /* gzip */ };
  return {
    cases: new api.CaseService(node, creds, options),
    consents: new api.ConsentService(node, creds, options),
    audit: new api.AuditService(node, creds, options),
  };
}

/** A unary call as a promise: { response, metadata }. */
function call(client, method, request, metadata) {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata || {})) md.set(k, v);
  return new Promise((resolve, reject) => {
    let headers;
    const c = client[method](request, md, { deadline: Date.now() + 10000 }, (err, response) =>
      err ? reject(err) : resolve({ response, metadata: headers }),
    );
    c.on('metadata', (m) => (headers = m));
  });
}

const ACTOR = { 'x-sluis-actor': 'mw-0042' };
const sha256 = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();

/** RFC 9162, section 2.1.3.2. */
function verifyInclusion(index, size, leaf, proof, root) {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1n;
  let r = sha256(Buffer.from([0]), leaf);
  for (const p of proof) {
    if (sn === 0n) return false;
    if (fn & 1n || fn === sn) {
      r = sha256(Buffer.from([1]), p, r);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = sha256(Buffer.from([1]), r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && r.equals(root);
}

async function main() {
  const { node, pki } = args();
  const municipality = clients(node, pki, MUNICIPALITY);
  const ngo = clients(node, pki, NGO);
  const officer = clients(node, pki, OFFICER);

  console.log('1. The municipality registers a case (and retries it)');
  const register = {
    data: {
      identity: { name: 'Amina Example', date_of_birth: '1990-04-01', nationality: 'ERI', v_number: '3012345679' },
      shelter: { location: 'LVV Utrecht', since: '2026-01-15' },
      guidance: { organisation: NGO, notes: 'weekly talks' },
    },
    request_id: crypto.randomUUID(),
  };
  const first = (await call(municipality.cases, 'RegisterCase', register, ACTOR)).response;
  const again = (await call(municipality.cases, 'RegisterCase', register, ACTOR)).response;
  const caseId = first.case_id;
  expect(again.case_id === caseId, `the retry answers the same case ${caseId}`);

  console.log('2. A mistake gets an answer a program can act on');
  try {
    const wrong = structuredClone(register);
    wrong.data.identity.date_of_birth = '2090-01-01';
    wrong.request_id = crypto.randomUUID();
    await call(municipality.cases, 'RegisterCase', wrong, ACTOR);
    throw new Error('FAILED: a date of birth in 2090 was accepted');
  } catch (err) {
    if (err.code === undefined) throw err;
    const { errorInfo, badRequest } = errorDetails(err);
    expect(err.code === grpc.status.INVALID_ARGUMENT, 'INVALID_ARGUMENT');
    expect(errorInfo && errorInfo.reason === 'INVALID_FIELD' && errorInfo.domain === 'sluis.nl', 'ErrorInfo INVALID_FIELD in sluis.nl');
    const field = badRequest && badRequest.field_violations[0].field;
    expect(field === 'data.identity.date_of_birth', `BadRequest names ${field}`);
  }

  console.log("3. The municipality records the migrant's consent for the NGO");
  const grant = {
    case_id: caseId,
    recipients: [{ participant: NGO }],
    categories: ['CATEGORY_IDENTITY', 'CATEGORY_SHELTER', 'CATEGORY_GUIDANCE'],
    purposes: ['shelter', 'guidance'],
    evidence_ref: 'DMS-2026-0043 (signed consent form)',
    request_id: crypto.randomUUID(),
  };
  const consent = (await call(municipality.consents, 'GrantConsent', grant, ACTOR)).response.consent;
  expect(consent.state === 'CONSENT_STATE_ACTIVE', `consent ${consent.consent_id} active`);

  console.log('4. The NGO reads the case for shelter, and finds it in its listing');
  const { response: read, metadata } = await call(ngo.cases, 'GetCase', { case_id: caseId, purpose: 'shelter' });
  expect(read.released.includes('CATEGORY_IDENTITY') && read.data.identity.name === 'Amina Example', 'the identity, on consent');
  expect(metadata.get('x-request-id')[0] === read.access_record_id, 'x-request-id names the access record');
  const listed = [];
  let token = '';
  do {
    const page = (await call(ngo.cases, 'FindCases', { scope: 'SCOPE_VISIBLE', purpose: 'shelter', page_size: 100, page_token: token })).response;
    listed.push(...page.cases.map((c) => c.subject_pseudonym));
    token = page.next_page_token;
  } while (token);
  expect(listed.includes(read.subject_pseudonym), `the case is among the ${listed.length} visible to the NGO`);

  console.log('5. The municipality records the withdrawal; the next read is withheld');
  const withdraw = { consent_id: consent.consent_id, note: 'withdrawn in conversation', request_id: crypto.randomUUID() };
  await call(municipality.consents, 'WithdrawConsent', withdraw, ACTOR);
  const retried = (await call(municipality.consents, 'WithdrawConsent', withdraw, ACTOR)).response;
  expect(retried.consent.state === 'CONSENT_STATE_WITHDRAWN', 'a retried withdrawal answers the withdrawal, not an error');
  const after = (await call(ngo.cases, 'GetCase', { case_id: caseId, purpose: 'shelter' })).response;
  expect(
    after.withheld.some((w) => w.category === 'CATEGORY_IDENTITY' && w.reason === 'WITHHOLD_REASON_CONSENT_WITHDRAWN'),
    'identity withheld: CONSENT_WITHDRAWN',
  );

  console.log('6. The privacy officer audits the case and checks a proof offline');
  const entries = await new Promise((resolve, reject) => {
    const got = [];
    officer.audit
      .QueryAccess({ case_id: caseId })
      .on('data', (m) => got.push(m.entry))
      .on('error', reject)
      .on('end', () => resolve(got));
  });
  const ngoReads = entries.filter((e) => e.caller === NGO && e.method === 'GetCase');
  expect(ngoReads.length === 2, `${entries.length} accesses to the case, 2 reads by the NGO (${ngoReads.map((e) => e.decision).join(', ')})`);
  let proof;
  for (let attempt = 0; !proof; attempt++) {
    try {
      proof = (await call(officer.audit, 'GetInclusionProof', { access_record_id: read.access_record_id })).response;
    } catch (err) {
      // Not covered by a signed checkpoint yet: one follows within a second.
      if (err.code !== grpc.status.FAILED_PRECONDITION || attempt > 50) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  expect(
    verifyInclusion(BigInt(proof.index), BigInt(proof.tree_size), proof.entry.leaf, proof.hashes, proof.checkpoint.root_hash),
    `entry ${proof.index} verifies against the checkpoint of size ${proof.tree_size}`,
  );
  try {
    await call(officer.audit, 'GetInclusionProof', { index: String(BigInt(proof.tree_size) + 1000000000n) });
    throw new Error('FAILED: an index past the end was answered');
  } catch (err) {
    if (err.code === undefined) throw err;
    expect(err.code === grpc.status.OUT_OF_RANGE, 'an index past the end: OUT_OF_RANGE');
  }
  console.log('\nThe whole flow ran as expected.');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err.message || err);
    process.exit(1);
  },
);
