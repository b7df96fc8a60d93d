# A helpdesk's ticket export (helpdesk.jsonl), one ticket a line, into escalations.
#
# A ticket is an escalation of its organisation's account: raised when the ticket was created,
# acknowledged at the first public reply, resolved when it was solved. A ticket not yet replied
# to or not yet solved yields only what happened. The export writes `created_at` in the
# helpdesk's local time (UTC+01:00), `first_reply_at_ms` in epoch milliseconds and `solved_at`
# in epoch seconds. `reopens` (a count, without times) is not mapped.

# The helpdesk's priorities as rapport's severities.
def severity: {"urgent": "critical", "high": "high", "normal": "medium", "low": "low"}[.] // "medium";

.ticket as $t
| {account: $t.organization.external_id, escalation: "ticket-\($t.id)"} as $base
| ($base + {
    type: "escalation_raised",
    occurred_at: ($t.created_at | from_local("+01:00")),
    severity: ($t.priority | severity),
    summary: $t.subject
  }),
  (.metrics.first_reply_at_ms // empty
    | $base + {type: "escalation_acknowledged", occurred_at: from_epoch_ms}),
  (.metrics.solved_at // empty
    | $base + {type: "escalation_resolved", occurred_at: from_epoch_s})
