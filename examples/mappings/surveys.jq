# A survey tool's response export (surveys.csv), one answer a row, into survey answers.
#
# The tool exports every campaign's answers to two questions, an NPS one (0-10) and a CSAT one
# (1-5), with the respondent's company, the time submitted as day/month/year in UTC, and an
# optional comment. An answer left blank (an empty Score) is no event.

# "How likely ..." is the NPS question; "How satisfied ..." the CSAT one.
def metric: if startswith("How likely") then "nps" elif startswith("How satisfied") then "csat" else error("unknown question: \(.)") end;

select(.Score)
| {
    type: "survey_answered",
    account: .["Company ID"],
    occurred_at: (.["Submitted At"] | strptime("%d/%m/%Y %H:%M") | mktime | todate),
    survey: .Campaign
  }
+ {(.Question | metric): (.Score | tonumber)}
+ (if .Comment then {comment: .Comment} else {} end)
