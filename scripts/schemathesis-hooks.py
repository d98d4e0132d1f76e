"""Schemathesis hooks for `make fuzz-api` (scripts/schemathesis.sh).

One check, `accepted_unless_unknowable`: schemathesis's own `positive_data_acceptance`
(a request the schema calls valid must not be refused with 400/422), except for the
two refusals no schema can foresee, recognised by the body the platform answers them
with (`google.rpc.Status`):

- a password refused as easy to guess (`password`: "is too easy to guess: ..."): its
  strength is an estimate over dictionaries and patterns, not a rule JSON Schema can
  state; the length rules are in the schema;
- a new password for one's own account without `currentPassword`
  (`current_password`: "is required to change your own password"): whether it is
  needed depends on whose account the token is, which a schema cannot know (an admin
  resetting another account's password needs none);
- FAILED_PRECONDITION (code 9), e.g. cancelling an order that is no longer pending:
  the request is well-formed, the resource's state says no.

Anything else refused with 400 fails the run, and so does a 400 that lists any other
field violation beside these.

And one hook, `before_call`: the run has one account's token, and its id shows in the
answers (an order's `userId`); a `DELETE /v1/users/{id}` of that id would end the
account, and every later call would be a 401 that tests nothing. Such a call goes to
another (random) id instead, which is as valid a request.
"""

import os
import uuid

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

FAILED_PRECONDITION = 9


def _unknowable(body):
    if not isinstance(body, dict):
        return False
    if body.get("code") == FAILED_PRECONDITION:
        return True
    violations = [
        violation
        for detail in body.get("details") or []
        for violation in detail.get("fieldViolations") or []
    ]
    return bool(violations) and all(_identity_or_strength(v) for v in violations)


def _identity_or_strength(violation):
    field = violation.get("field")
    description = str(violation.get("description", ""))
    return (field == "password" and description.startswith("is too easy to guess")) or (
        field == "current_password"
        and description == "is required to change your own password"
    )


@schemathesis.hook
def before_call(context, case, kwargs):
    own = os.environ.get("FUZZ_OWN_USER_ID")
    if (
        own
        and case.method.upper() == "DELETE"
        and case.operation.path == "/v1/users/{id}"
        and str((case.path_parameters or {}).get("id", "")).lower() == own.lower()
    ):
        case.path_parameters["id"] = str(uuid.uuid4())


@schemathesis.check
def accepted_unless_unknowable(ctx, response, case):
    try:
        return positive_data_acceptance(ctx, response, case)
    except AssertionError:
        try:
            body = response.json()
        except Exception:  # noqa: BLE001 - not JSON: the refusal stands
            raise
        if _unknowable(body):
            return None
        raise
