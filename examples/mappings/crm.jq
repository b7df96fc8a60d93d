# A CRM's activity log (crm.jsonl), one activity a line, into touchpoints and commitments.
#
# Meetings and calls are touchpoints. A task is a commitment made when it was created, due at
# the end of its due date (UTC), and delivered when it was completed; a task still open past
# its due date is overdue in trust without any further event. Times carry their own offset;
# due dates are plain dates. Other activities (notes) are no event.

.account.id as $account
| if .kind == "meeting" or .kind == "call" then
    {type: "touchpoint", account: $account, occurred_at: .start, channel: .kind}
  elif .kind == "task" then
    "task-\(.id)" as $key
    | {type: "commitment_made", account: $account, occurred_at: .created_at, commitment: $key,
       title: .subject, due: "\(.due_date)T23:59:59Z"},
      (.completed_at // empty
        | {type: "commitment_delivered", account: $account, occurred_at: ., commitment: $key, accepted: true})
  else empty end
