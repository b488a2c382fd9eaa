"""OpenFeature's own Python SDK and OFREP provider evaluating ECS flags.

Run by tests/tests/it/flags.rs against a running server that it filled with the
flags the Node.js client also reads; ECS_URL and ECS_TOKEN say where and as
whom. Exits non-zero on the first answer that differs from the flags.
"""

import os

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import ErrorCode, Reason

token = os.environ["ECS_TOKEN"]
api.set_provider(
    OFREPProvider(os.environ["ECS_URL"], headers_factory=lambda: {"X-API-Key": token})
)
client = api.get_client()
acme = EvaluationContext("user-1", {"tenant": "acme"})
checks = []


def check(name, details, value, reason=None):
    checks.append(name)
    assert details.error_code is None, f"{name}: {details}"
    assert details.value == value, f"{name}: {details}"
    if reason is not None:
        assert details.reason == reason, f"{name}: {details}"


check(
    "boolean",
    client.get_boolean_details("new-checkout", True, EvaluationContext(None, {"email": "x@y.z"})),
    False,
    Reason.DEFAULT,
)
check("string", client.get_string_details("banner", "none", acme), "hello", Reason.STATIC)
check("number", client.get_integer_details("limit", 0, acme), 10, Reason.STATIC)
check("object", client.get_object_details("theme", {}, acme), {"bg": "black"}, Reason.STATIC)
check(
    "targeted rule",
    client.get_boolean_details(
        "new-checkout", False, EvaluationContext("u", {"email": "jo@acme.example"})
    ),
    True,
    Reason.TARGETING_MATCH,
)
check("edition layer", client.get_boolean_details("new-checkout", False, acme), True)

# A percentage rollout: sticky per user, and a hundred users see both variants.
seen = set()
for i in range(100):
    ctx = EvaluationContext(f"user-{i}")
    first = client.get_boolean_details("rollout", False, ctx)
    again = client.get_boolean_details("rollout", False, ctx)
    assert first.reason == Reason.SPLIT, first
    assert first.value == again.value
    seen.add(first.value)
assert seen == {False, True}, seen
checks.append("percentage rollout")

# A disabled flag answers OFREP's code default (reason DISABLED, no value, no
# variant): the caller's default is the value. openfeature-provider-ofrep
# 0.3.0 reads `variant` unconditionally, so it reports such an answer as an
# error while still returning the code default.
for code_default in (False, True):
    disabled = client.get_boolean_details("retired", code_default, acme)
    assert disabled.value == code_default, disabled
    assert disabled.reason in (Reason.DISABLED, Reason.ERROR), disabled
checks.append("disabled flag")

missing = client.get_string_details("nope", "code default", acme)
assert missing.value == "code default", missing
assert missing.error_code == ErrorCode.FLAG_NOT_FOUND, missing
checks.append("missing flag")

print(f"ofrep python client: {len(checks)} checks passed: {', '.join(checks)}")
