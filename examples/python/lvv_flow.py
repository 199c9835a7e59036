#!/usr/bin/env python3
"""The whole LVV flow against a sluis node, as an agency back-end runs it.

Generates the Python stubs from proto/sluis/v1 at start (grpcio-tools), then,
over mutual TLS with the dev participants' certificates:

 1. the municipality registers a case, and retries the call with the same
    request_id: the same case, registered once (AIP-155);
 2. a mistake (a date of birth in the future) comes back as INVALID_ARGUMENT
    with a BadRequest naming the field, and an ErrorInfo reason;
 3. the municipality records the migrant's consent for the NGO;
 4. the NGO reads the case (by the id the owner passed it) for its stated
    purpose, getting what consent and policy release, and finds it among the
    cases visible to it (paging until next_page_token is empty);
 5. the municipality records the withdrawal, and the NGO's next read is
    withheld;
 6. the privacy officer queries the access log for the case and checks an
    inclusion proof of the NGO's read against a signed checkpoint, offline,
    with RFC 6962 hashing (sha256 only).

Every call is gzip-compressed. Exits 0 when every step did what it should.

    python3 lvv_flow.py --node localhost:7443 --pki sluis-dev/pki
"""

import argparse
import hashlib
import importlib.resources
import os
import sys
import tempfile
import time
import uuid

import grpc
from grpc_status import rpc_status
from grpc_tools import protoc
from google.rpc import error_details_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "..", "proto")
PROTOS = ["case", "consent", "audit", "stats", "errors"]

MUNICIPALITY = "gemeente-utrecht"
NGO = "ngo-vluchtelingenwerk"
OFFICER = "fg-utrecht"
ACTOR = [("x-sluis-actor", "mw-0042")]  # the employee on whose behalf we act


def generate_stubs(out_dir):
    """Compiles proto/sluis/v1 into out_dir and makes it importable."""
    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    files = [os.path.join("sluis", "v1", f"{p}.proto") for p in PROTOS]
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *files,
        ]
    )
    if rc != 0:
        sys.exit(f"protoc failed ({rc})")
    sys.path.insert(0, out_dir)


class Failed(Exception):
    pass


def expect(ok, what):
    if not ok:
        raise Failed(what)
    print(f"   ok: {what}")


def channel(node, pki, who):
    """An mTLS channel as participant `who`, gzip on every call."""

    def read(name):
        with open(os.path.join(pki, name), "rb") as f:
            return f.read()

    creds = grpc.ssl_channel_credentials(
        root_certificates=read("ca.pem"),
        private_key=read(f"clients/{who}.key"),
        certificate_chain=read(f"clients/{who}.pem"),
    )
    return grpc.secure_channel(node, creds, compression=grpc.Compression.Gzip)


def error_details(err):
    """google.rpc.Status details of a failed call: (ErrorInfo, BadRequest)."""
    status = rpc_status.from_call(err)
    info, bad = None, None
    for any_ in status.details if status else []:
        if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_.Unpack(info)
        elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_.Unpack(bad)
    return info, bad


def leaf_hash(leaf):
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, path, root):
    """RFC 9162, section 2.1.3.2: is `leaf` entry `index` of the tree of
    `size` entries whose root is `root`?"""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", default="localhost:7443", help="host:port of the node")
    parser.add_argument("--pki", default="sluis-dev/pki", help="the dev node's pki folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as stubs:
        generate_stubs(stubs)
        run(args)
    print("\nThe whole flow ran as expected.")


def run(args):
    from sluis.v1 import audit_pb2, audit_pb2_grpc, case_pb2, case_pb2_grpc
    from sluis.v1 import consent_pb2, consent_pb2_grpc

    municipality = channel(args.node, args.pki, MUNICIPALITY)
    ngo = channel(args.node, args.pki, NGO)
    officer = channel(args.node, args.pki, OFFICER)
    cases = case_pb2_grpc.CaseServiceStub(municipality)
    consents = consent_pb2_grpc.ConsentServiceStub(municipality)

    print("1. The municipality registers a case (and retries it)")
    identity = case_pb2.Identity(
        name="Amina Example",
        date_of_birth="1990-04-01",
        nationality="ERI",
        v_number="3012345678",
    )
    register = case_pb2.RegisterCaseRequest(
        data=case_pb2.CaseData(
            identity=identity,
            shelter=case_pb2.Shelter(location="LVV Utrecht", since="2026-01-15"),
            guidance=case_pb2.Guidance(organisation=NGO, notes="weekly talks"),
            perspective=case_pb2.Perspective(
                kind=case_pb2.PERSPECTIVE_KIND_UNDETERMINED,
                intake_scenario=case_pb2.PERSPECTIVE_KIND_UNDETERMINED,
            ),
        ),
        request_id=str(uuid.uuid4()),
    )
    first = cases.RegisterCase(register, metadata=ACTOR, timeout=10)
    again = cases.RegisterCase(register, metadata=ACTOR, timeout=10)
    case_id = first.case_id
    expect(again.case_id == case_id, f"the retry answers the same case {case_id}")
    expect(
        again.access_record_id != first.access_record_id,
        "and is an access of its own in the log",
    )

    print("2. A mistake gets an answer a program can act on")
    wrong = case_pb2.RegisterCaseRequest()
    wrong.CopyFrom(register)
    wrong.data.identity.date_of_birth = "2090-01-01"
    wrong.request_id = str(uuid.uuid4())
    try:
        cases.RegisterCase(wrong, metadata=ACTOR, timeout=10)
        raise Failed("a date of birth in 2090 was accepted")
    except grpc.RpcError as e:
        info, bad = error_details(e)
        expect(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
        expect(
            info is not None and info.domain == "sluis.nl" and info.reason == "INVALID_FIELD",
            f"ErrorInfo {info.reason if info else None} in {info.domain if info else None}",
        )
        field = bad.field_violations[0].field if bad else None
        expect(field == "data.identity.date_of_birth", f"BadRequest names {field}")
        print(f"      message: {e.details()}")

    print("3. The municipality records the migrant's consent for the NGO")
    grant = consent_pb2.GrantConsentRequest(
        case_id=case_id,
        recipients=[consent_pb2.Recipient(participant=NGO)],
        categories=[case_pb2.CATEGORY_IDENTITY, case_pb2.CATEGORY_SHELTER, case_pb2.CATEGORY_GUIDANCE],
        purposes=["shelter", "guidance"],
        evidence_ref="DMS-2026-0042 (signed consent form)",
        request_id=str(uuid.uuid4()),
    )
    consent = consents.GrantConsent(grant, metadata=ACTOR, timeout=10).consent
    expect(consent.state == consent_pb2.CONSENT_STATE_ACTIVE, f"consent {consent.consent_id} active")

    print("4. The NGO reads the case for shelter, and finds it in its listing")
    ngo_cases = case_pb2_grpc.CaseServiceStub(ngo)
    # The owner passed the NGO the case id; the NGO gets its own pseudonym.
    read, call = ngo_cases.GetCase.with_call(
        case_pb2.GetCaseRequest(case_id=case_id, purpose="shelter"), timeout=10
    )
    pseudonym = read.subject_pseudonym
    listed, token = [], ""
    while True:  # AIP-158 paging: until next_page_token is empty
        page = ngo_cases.FindCases(
            case_pb2.FindCasesRequest(
                scope=case_pb2.FindCasesRequest.SCOPE_VISIBLE,
                purpose="shelter",
                page_size=100,
                page_token=token,
            ),
            timeout=10,
        )
        listed += [c.subject_pseudonym for c in page.cases]
        token = page.next_page_token
        if not token:
            break
    expect(pseudonym in listed, f"the case is among the {len(listed)} visible to the NGO")
    released = {case_pb2.Category.Name(c) for c in read.released}
    expect(
        {"CATEGORY_IDENTITY", "CATEGORY_SHELTER"} <= released,
        f"released: {', '.join(sorted(released))}",
    )
    expect(read.data.identity.name == "Amina Example", "the identity, on consent")
    request_ids = dict(call.initial_metadata())
    expect(
        request_ids.get("x-request-id") == read.access_record_id,
        "x-request-id names the access record",
    )
    read_record = read.access_record_id

    print("5. The municipality records the withdrawal; the next read is withheld")
    withdraw = consent_pb2.WithdrawConsentRequest(
        consent_id=consent.consent_id, note="withdrawn in conversation", request_id=str(uuid.uuid4())
    )
    consents.WithdrawConsent(withdraw, metadata=ACTOR, timeout=10)
    retried = consents.WithdrawConsent(withdraw, metadata=ACTOR, timeout=10)
    expect(
        retried.consent.state == consent_pb2.CONSENT_STATE_WITHDRAWN,
        "a retried withdrawal answers the withdrawal, not an error",
    )
    after = ngo_cases.GetCase(
        case_pb2.GetCaseRequest(subject_pseudonym=pseudonym, purpose="shelter"), timeout=10
    )
    reasons = {case_pb2.WithholdReason.Name(w.reason) for w in after.withheld}
    expect(
        "WITHHOLD_REASON_CONSENT_WITHDRAWN" in reasons and not after.data.HasField("identity"),
        "identity withheld: CONSENT_WITHDRAWN",
    )

    print("6. The privacy officer audits the case and checks a proof offline")
    audit = audit_pb2_grpc.AuditServiceStub(officer)
    entries = [
        m.entry
        for m in audit.QueryAccess(audit_pb2.QueryAccessRequest(case_id=case_id), timeout=10)
    ]
    ngo_reads = [e for e in entries if e.caller == NGO and e.method == "GetCase"]
    expect(len(ngo_reads) == 2, f"{len(entries)} accesses to the case, 2 reads by the NGO")
    decisions = [audit_pb2.Decision.Name(e.decision) for e in ngo_reads]
    print(f"      the NGO's reads: {', '.join(decisions)}")
    for attempt in range(50):
        try:
            proof = audit.GetInclusionProof(
                audit_pb2.GetInclusionProofRequest(access_record_id=read_record), timeout=10
            )
            break
        except grpc.RpcError as e:
            # Not covered by a signed checkpoint yet: one follows within a second.
            if e.code() != grpc.StatusCode.FAILED_PRECONDITION or attempt == 49:
                raise
            time.sleep(0.2)
    expect(proof.entry.access_record_id == read_record, f"entry {proof.index} is the NGO's read")
    expect(
        verify_inclusion(
            proof.index,
            proof.tree_size,
            proof.entry.leaf,
            list(proof.hashes),
            proof.checkpoint.root_hash,
        ),
        f"the inclusion proof verifies against the checkpoint of size {proof.tree_size}",
    )
    try:
        audit.GetInclusionProof(
            audit_pb2.GetInclusionProofRequest(index=proof.tree_size + 10**9), timeout=10
        )
        raise Failed("an index past the end was answered")
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.OUT_OF_RANGE, "an index past the end: OUT_OF_RANGE")


if __name__ == "__main__":
    try:
        main()
    except Failed as f:
        sys.exit(f"FAILED: {f}")
