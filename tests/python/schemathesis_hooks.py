"""A check schemathesis runs, through SCHEMATHESIS_HOOKS, in place of its generic
`positive_data_acceptance` on `POST /v1/commands` (see schemathesis.toml).

A command is a signed envelope: no schema can describe a payload whose signature verifies, so a
schema-valid envelope made by a fuzzer is refused. What the document does promise is that the
envelope's own form (JSON, base64, the payload type, one signature, the size) is all in its schema:
a schema-valid envelope is never refused for its form, only for what its payload says or for its
signature."""

from __future__ import annotations

import schemathesis

MAX_ENVELOPE_BYTES = 32_768

# Problems about the envelope's form, which the DsseEnvelope schema rules out.
FORM_PROBLEMS = {"malformed-json", "bad-base64", "wrong-payload-type", "signature-count"}


@schemathesis.check
def schema_valid_envelopes_are_refused_only_for_their_payload(ctx, response, case):
    operation = case.operation
    if operation.method.upper() != "POST" or operation.path != "/v1/commands":
        return None
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if not 400 <= response.status_code < 500:
        return None
    code = response.json().get("code")
    body = response.request.body or b""
    if code in FORM_PROBLEMS:
        raise AssertionError(f"a schema-valid envelope was refused for its form: {response.text}")
    if code == "body-too-large" and len(body) <= MAX_ENVELOPE_BYTES:
        raise AssertionError(f"an envelope of {len(body)} bytes was refused as too large")
    return None
