//! `rapport erase`: erase one account's personal text (`--account`), run a retention policy
//! (`--older-than`), or list the erasures recorded (`--list`). See `docs/privacy.md`.

use anyhow::anyhow;
use rapport_core::erase::Erasure;
use rapport_core::escape::one_line;
use rapport_core::{AccountId, AnyStore, EraseError, Ledger, Timestamp};

use crate::{Failure, Out, fail};

/// What to erase.
pub(crate) enum Target {
    Account(String),
    /// Text of events older than this, from now.
    OlderThan(std::time::Duration),
    List,
}

fn line(e: &Erasure) -> String {
    let whose = match &e.account {
        Some(a) => format!("account {}", one_line(a.as_str())),
        None => "every account".to_owned(),
    };
    let what = match e.before {
        Some(t) => format!("text of events before {t}"),
        None => "all its text".to_owned(),
    };
    format!("{}  {whose}: {what}; {} keys destroyed; reason: {}", e.at, e.keys_destroyed, one_line(&e.reason))
}

pub(crate) fn cmd_erase(ledger: &Ledger<AnyStore>, target: Target, reason: Option<&str>) -> Result<(), Failure> {
    let mut out = Out::new();
    let reason = || {
        reason.ok_or_else(|| {
            fail(2, anyhow!("--reason is required: why the text is erased (a request or policy, not a person)"))
        })
    };
    let done = match target {
        Target::List => {
            for e in pollster::block_on(ledger.erasures())? {
                out.line(format_args!("{}", line(&e)))?;
            }
            return out.finish();
        }
        Target::Account(account) => {
            let id = AccountId::new(&account).map_err(|e| fail(2, anyhow!("--account {account:?}: {e}")))?;
            pollster::block_on(ledger.erase(&id, reason()?))
        }
        Target::OlderThan(age) => {
            let nanos = i64::try_from(age.as_nanos()).unwrap_or(i64::MAX);
            let before = Timestamp::from_unix_nanos(Timestamp::now().unix_nanos().saturating_sub(nanos));
            if !before.in_range() {
                return Err(fail(2, anyhow!("--older-than reaches before the earliest instant this build keeps")));
            }
            pollster::block_on(ledger.erase_before(before, reason()?))
        }
    };
    match done {
        Ok(e) => {
            out.line(format_args!("erased: {}", line(&e)))?;
            out.finish()
        }
        Err(e @ (EraseError::InvalidReason(_) | EraseError::UnknownAccount(_))) => Err(fail(2, e.into())),
        Err(e @ EraseError::Unsupported(_)) => Err(fail(2, e.into())),
        Err(e) => Err(fail(1, e.into())),
    }
}
