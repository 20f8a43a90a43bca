#!/usr/bin/env python3
"""Check the properties of template.yaml that cfn-lint cannot judge.

cfn-lint validates the template against the CloudFormation schemas. This script checks the
settings that the service depends on. It compares the work queue's visibility timeout with the
worker's timeout and the ingest timeout with Asana's 10-second deadline. It checks the FIFO and
deduplication settings, the dead-letter queue's retention, and the SQS actions of each role.

Resources are found by structure, not by logical id. A function is found by the cargo-lambda
binary it builds and a role through its function's `Role` property. The work queue is the
queue of the worker's SQS event, and the dead-letter queue is the work queue's RedrivePolicy
target.

Usage: scripts/check_template.py [TEMPLATE]   (default: template.yaml at the repository root)
Prints one line per check and exits with status 1 if any check failed.
"""

import sys
from pathlib import Path

import yaml

# Asana retries a delivery that gets no 2xx response within 10 seconds.
ASANA_RESPONSE_DEADLINE_SECONDS = 10
# AWS recommends a queue visibility timeout of at least six times the function timeout for
# Lambda functions with an SQS event source.
VISIBILITY_TO_TIMEOUT_RATIO = 6
# 14 days, the SQS maximum.
DLQ_RETENTION_SECONDS = 1209600

INGEST_SQS_ACTIONS = ["sqs:SendMessage"]
WORKER_SQS_ACTIONS = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:SendMessage",
]


class CloudFormationLoader(yaml.SafeLoader):
    """YAML loader that turns short-form intrinsics (`!Ref`, `!GetAtt`, `!Sub`, ...) into the
    long form that CloudFormation's JSON syntax uses."""


def construct_intrinsic(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)

    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", construct_intrinsic)


class Checker:
    """The checks of one template, and the number that failed."""

    def __init__(self, template):
        self.resources = (template or {}).get("Resources") or {}
        self.failures = 0

    def report(self, passed, description, found):
        """Print one check's result, with what was found."""
        status = "ok  " if passed else "FAIL"
        print(f"{status} {description}: found {found}")
        if not passed:
            self.failures += 1

    def find_function(self, binary):
        """Return (logical id, properties) of the function whose cargo-lambda binary is
        `binary`, or (None, {}) after reporting a failure."""
        matches = [
            (logical_id, resource.get("Properties") or {})
            for logical_id, resource in self.resources.items()
            if resource.get("Type") == "AWS::Serverless::Function"
            and ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
            == binary
        ]
        if len(matches) != 1:
            found = [logical_id for logical_id, _ in matches] or "none"
            self.report(False, f"exactly one function builds binary {binary!r}", found)
            return None, {}
        return matches[0]

    def resolve_getatt(self, value, description):
        """Return (logical id, properties) of the resource that `!GetAtt X.Arn` names, or
        (None, {}) after reporting a failure."""
        getatt = value.get("Fn::GetAtt") if isinstance(value, dict) else None
        logical_id = getatt[0] if isinstance(getatt, list) and getatt else None
        if logical_id not in self.resources:
            self.report(False, f"{description} is !GetAtt <resource in this template>.Arn", value)
            return None, {}
        return logical_id, self.resources[logical_id].get("Properties") or {}

    def check_integer(self, value, description, predicate):
        """Report whether `value` is a literal integer that satisfies `predicate`. Return the
        integer, or None when it is not one."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.report(False, description, f"{value!r}, which is not a literal integer")
            return None
        self.report(predicate(value), description, value)
        return value

    def role_statements(self, role_id, role):
        """Return the policy statements attached to a role: its inline policies plus any
        AWS::IAM::Policy or AWS::IAM::ManagedPolicy resource that names it in `Roles`."""
        documents = [
            policy.get("PolicyDocument") if isinstance(policy, dict) else policy
            for policy in role.get("Policies") or []
        ]
        for resource in self.resources.values():
            if resource.get("Type") not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                continue
            properties = resource.get("Properties") or {}
            if {"Ref": role_id} in (properties.get("Roles") or []):
                documents.append(properties.get("PolicyDocument") or {})

        statements = []
        for document in documents:
            # An intrinsic function in place of a document or statement list is kept as it is,
            # so that the caller reports it as unreadable.
            listed = document.get("Statement", []) if isinstance(document, dict) else document
            statements.extend(listed if isinstance(listed, list) else [listed])
        return statements

    def check_role_sqs_actions(self, function_id, function, allowed):
        """Check that the function's role allows no SQS action outside `allowed`. IAM action
        names are case-insensitive."""
        role_id, role = self.resolve_getatt(
            function.get("Role"), f"Role of {function_id}"
        )
        if role_id is None:
            return

        # A managed policy's actions are not visible in the template, so none is accepted.
        managed = role.get("ManagedPolicyArns") or []
        self.report(not managed, f"{role_id} has no managed policies", managed or "none")

        granted = set()
        unreadable = []
        for statement in self.role_statements(role_id, role):
            if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
                unreadable.append(statement)
                continue
            if statement["Effect"] == "Deny":
                continue
            actions = statement.get("Action")
            actions = [actions] if isinstance(actions, str) else actions
            if "NotAction" in statement or not isinstance(actions, list):
                unreadable.append(statement)
                continue
            for action in actions:
                if not isinstance(action, str):
                    unreadable.append(statement)
                elif action == "*" or action.lower().startswith("sqs:"):
                    granted.add(action)

        self.report(
            not unreadable,
            f"every statement of {role_id} has an Effect and lists its allowed actions as strings",
            unreadable or "all readable",
        )
        allowed_lower = {action.lower() for action in allowed}
        extra = sorted(action for action in granted if action.lower() not in allowed_lower)
        self.report(
            not extra,
            f"{role_id} allows no SQS action outside {', '.join(allowed)}",
            f"SQS actions {sorted(granted)}" + (f", not allowed: {extra}" if extra else ""),
        )

    def run(self):
        """Run every check and return the number of failed checks."""
        ingest_id, ingest = self.find_function("ingest")
        worker_id, worker = self.find_function("worker")

        if ingest_id is not None:
            self.check_integer(
                ingest.get("Timeout"),
                f"{ingest_id} Timeout is below Asana's "
                f"{ASANA_RESPONSE_DEADLINE_SECONDS} s response deadline",
                lambda timeout: timeout < ASANA_RESPONSE_DEADLINE_SECONDS,
            )
            self.check_role_sqs_actions(ingest_id, ingest, INGEST_SQS_ACTIONS)

        if worker_id is None:
            return self.failures

        self.check_role_sqs_actions(worker_id, worker, WORKER_SQS_ACTIONS)
        worker_timeout = self.check_integer(
            worker.get("Timeout"), f"{worker_id} Timeout is a positive integer", lambda t: t > 0
        )

        sqs_events = [
            event.get("Properties") or {}
            for event in (worker.get("Events") or {}).values()
            if event.get("Type") == "SQS"
        ]
        if len(sqs_events) != 1:
            self.report(False, f"{worker_id} has exactly one SQS event", len(sqs_events))
            return self.failures

        queue_id, queue = self.resolve_getatt(
            sqs_events[0].get("Queue"), f"Queue of {worker_id}'s SQS event"
        )
        if queue_id is None:
            return self.failures

        if worker_timeout is not None:
            minimum = VISIBILITY_TO_TIMEOUT_RATIO * worker_timeout
            self.check_integer(
                queue.get("VisibilityTimeout"),
                f"{queue_id} VisibilityTimeout is at least "
                f"{VISIBILITY_TO_TIMEOUT_RATIO} x {worker_id} Timeout ({minimum} s)",
                lambda visibility: visibility >= minimum,
            )
        self.report(
            queue.get("FifoQueue") is True, f"{queue_id} FifoQueue is true", queue.get("FifoQueue")
        )
        self.report(
            queue.get("ContentBasedDeduplication") is False,
            f"{queue_id} ContentBasedDeduplication is false",
            queue.get("ContentBasedDeduplication"),
        )

        redrive = queue.get("RedrivePolicy") or {}
        dlq_id, dlq = self.resolve_getatt(
            redrive.get("deadLetterTargetArn"), f"deadLetterTargetArn of {queue_id}"
        )
        if dlq_id is None:
            return self.failures

        self.report(
            dlq.get("FifoQueue") is True, f"{dlq_id} FifoQueue is true", dlq.get("FifoQueue")
        )
        self.check_integer(
            dlq.get("MessageRetentionPeriod"),
            f"{dlq_id} MessageRetentionPeriod is {DLQ_RETENTION_SECONDS} (14 days)",
            lambda retention: retention == DLQ_RETENTION_SECONDS,
        )
        return self.failures


def main():
    repository_root = Path(__file__).resolve().parent.parent
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else repository_root / "template.yaml"
    template = yaml.load(path.read_text(encoding="utf-8"), Loader=CloudFormationLoader)

    failures = Checker(template).run()
    if failures:
        print(f"{path}: {failures} check(s) failed", file=sys.stderr)
        return 1
    print(f"{path}: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
