//! What the local-edit commands (rename, tag, untag, delete) share.

use anyhow::{Result, bail};
use chrono::Utc;
use serde_json::Value;

use crate::fold::SessionState;
use crate::journal::{ChangeType, EntityType, Journal, NewChange, Origin};
use crate::provider::vscode::PROVIDER;

/// The session a prefix names, as the journal holds it now; an error if it was deleted.
pub fn current(journal: &Journal, prefix: &str) -> Result<(String, SessionState)> {
    let id = journal.resolve_session(prefix)?;
    match journal.state_at(&id, u64::MAX)? {
        Some(state) if state.exists => Ok((id, state)),
        Some(state) => bail!(
            "session {id} was deleted at seq {}; `chasm restore {id}` brings it back",
            state.deleted_seq.unwrap_or(state.last_seq)
        ),
        None => bail!("no session matches {prefix:?}"),
    }
}

/// Appends one local change and returns its seq.
pub fn record_local(
    journal: &mut Journal,
    session_id: &str,
    change_type: ChangeType,
    entity_type: EntityType,
    entity_id: &str,
    payload: Value,
) -> Result<u64> {
    let change = NewChange {
        session_id: session_id.to_owned(),
        change_type,
        entity_type,
        entity_id: entity_id.to_owned(),
        timestamp: Utc::now(),
        origin: Origin::Local,
        provider: PROVIDER.to_owned(),
        payload,
    };
    Ok(journal.append(vec![change])?[0].seq)
}
