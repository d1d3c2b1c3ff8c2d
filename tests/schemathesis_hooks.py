"""Loaded into the schemathesis CLI by tests/test_rest_proxy_schema.py (SCHEMATHESIS_HOOKS).

Works around a CPython 3.11.7 bug, not a Lantern one: `ast.parse` run from several threads at
once can raise `SystemError: AST constructor recursion depth mismatch` (CPython gh-106905, fixed
in later 3.11 releases). Hypothesis calls it only to describe a lambda in a strategy's repr, and
schemathesis's workers are threads, so a run reported a spurious "Runtime Error" for an operation
with a nested body schema. A lambda described as `lambda ...` changes no generated request and
no check."""

import schemathesis
from hypothesis.internal import lambda_sources

_describe = getattr(lambda_sources, "lambda_description", None)


def _lambda_description(f):
    try:
        return _describe(f)
    except SystemError:
        return "lambda: <source not parsed>"


if _describe is not None:  # a private hypothesis API (pinned in requirements.txt)
    lambda_sources.lambda_description = _lambda_description

# Partitions a generated create asks for at most: the broker accepts up to 10,000 per topic, and
# a stateful run creating such topics again and again on 2 busy cores makes answers slower than
# schemathesis's request timeout (a failure of the machine, not of the proxy).
MAX_PARTITIONS = 16


@schemathesis.hook
def before_call(context, case, **kwargs):
    """Internal topics (__consumer_offsets, __transaction_state) stay: stateful testing deletes the
    topics it lists, and a broker without its offsets topic cannot coordinate groups for the rest
    of the run (the broker deletes them when asked, an administrator's choice; Kafka's
    kafka-topics tool refuses to). The request still goes out, to a name that does not exist."""
    name = (case.path_parameters or {}).get("topic_name")
    if case.method.upper() != "GET" and isinstance(name, str) and name.startswith("__"):
        # Not deleted, and their configs not altered either.
        case.path_parameters["topic_name"] = "not-deleted" + name
    if isinstance(case.body, dict):
        for field in ("partitions_count", "partition_count"):
            n = case.body.get(field)
            if isinstance(n, int) and not isinstance(n, bool) and n > MAX_PARTITIONS:
                case.body[field] = MAX_PARTITIONS
