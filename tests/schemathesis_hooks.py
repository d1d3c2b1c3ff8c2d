"""Loaded into the schemathesis CLI by tests/test_rest_proxy_schema.py (SCHEMATHESIS_HOOKS).

Works around a CPython 3.11.7 bug, not a Lantern one: `ast.parse` run from several threads at
once can raise `SystemError: AST constructor recursion depth mismatch` (CPython gh-106905, fixed
in later 3.11 releases). Hypothesis calls it only to describe a lambda in a strategy's repr, and
schemathesis's workers are threads, so a run reported a spurious "Runtime Error" for an operation
with a nested body schema. A lambda described as `lambda ...` changes no generated request and
no check."""

import schemathesis
from hypothesis.internal import lambda_sources

_describe = lambda_sources.lambda_description


def _lambda_description(f):
    try:
        return _describe(f)
    except SystemError:
        return "lambda: <source not parsed>"


lambda_sources.lambda_description = _lambda_description


@schemathesis.hook
def before_call(context, case, **kwargs):
    """Internal topics (__consumer_offsets, __transaction_state) stay: stateful testing deletes the
    topics it lists, and a broker without its offsets topic cannot coordinate groups for the rest
    of the run (the broker deletes them when asked, an administrator's choice; Kafka's
    kafka-topics tool refuses to). The request still goes out, to a name that does not exist."""
    name = (case.path_parameters or {}).get("topic_name")
    if case.method.upper() == "DELETE" and isinstance(name, str) and name.startswith("__"):
        case.path_parameters["topic_name"] = "not-deleted" + name
