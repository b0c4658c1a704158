//! A party's standing: agency accreditation, suspension, and declared
//! affiliations (controlling group, related parties) that the anti-fraud rules read.

use serde::{Deserialize, Serialize};

use super::parties::{check_text, load_party, party_key, PartyRecord, Role};
use super::state::{StateError, StateRead, StateWrite};
use super::{ApplyContext, ApplyError, Event, Rejection};
use crate::limits::{MAX_NAME_BYTES, MAX_REASON_BYTES, MAX_RELATED_PARTIES};
use crate::types::TimestampMs;
use vledger_tlog::keys::PublicKey;

/// Body of `agency.accredit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccreditBody {
    pub agency: PublicKey,
    pub expires_at_ms: TimestampMs,
}

/// Body of `party.suspend` and `party.reinstate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    pub key: PublicKey,
    pub reason: String,
}

/// Body of `party.declare_affiliation`: replaces the party's declared affiliations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AffiliationBody {
    pub party: PublicKey,
    #[serde(default)]
    pub controlling_group: Option<String>,
    #[serde(default)]
    pub related_parties: Vec<PublicKey>,
}

fn require_target<S: StateRead>(state: &S, key: &PublicKey) -> Result<PartyRecord, ApplyError> {
    let party = load_party(state, key)?.ok_or(Rejection::PartyNotFound)?;
    if party.revoked_at.is_some() {
        return Err(Rejection::PartyInactive.into());
    }
    Ok(party)
}

pub(super) fn decide_accredit<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    body: &AccreditBody,
) -> Result<Vec<Event>, ApplyError> {
    let agency = require_target(state, &body.agency)?;
    if agency.role != Role::Agency {
        return Err(Rejection::WrongPartyRole {
            needed: "agency",
            actual: agency.role.as_str().into(),
        }
        .into());
    }
    if body.expires_at_ms.get() <= ctx.node_time_ms {
        return Err(Rejection::InvalidField {
            field: "expires_at_ms",
            reason: "must be in the future".into(),
        }
        .into());
    }
    Ok(vec![Event::AgencyAccredited {
        agency: body.agency,
        expires_at_ms: body.expires_at_ms.get(),
    }])
}

pub(super) fn decide_suspend<S: StateRead>(
    state: &S,
    actor: &PartyRecord,
    body: &SuspendBody,
    suspend: bool,
) -> Result<Vec<Event>, ApplyError> {
    check_text("reason", &body.reason, MAX_REASON_BYTES)?;
    let target = require_target(state, &body.key)?;
    if !matches!(target.role, Role::Agency | Role::Enterprise | Role::Escrow) {
        return Err(Rejection::WrongPartyRole {
            needed: "agency, enterprise or escrow",
            actual: target.role.as_str().into(),
        }
        .into());
    }
    match (suspend, target.suspended) {
        (true, true) => Err(Rejection::AlreadySuspended.into()),
        (false, false) => Err(Rejection::NotSuspended.into()),
        (true, false) => Ok(vec![Event::PartySuspended {
            key: body.key,
            by: actor.key,
            reason: body.reason.clone(),
        }]),
        (false, true) => Ok(vec![Event::PartyReinstated {
            key: body.key,
            by: actor.key,
            reason: body.reason.clone(),
        }]),
    }
}

pub(super) fn decide_affiliation<S: StateRead>(
    state: &S,
    body: &AffiliationBody,
) -> Result<Vec<Event>, ApplyError> {
    let target = require_target(state, &body.party)?;
    if !matches!(target.role, Role::Agency | Role::Enterprise) {
        return Err(Rejection::WrongPartyRole {
            needed: "agency or enterprise",
            actual: target.role.as_str().into(),
        }
        .into());
    }
    if let Some(group) = &body.controlling_group {
        check_text("controlling_group", group, MAX_NAME_BYTES)?;
    }
    if body.related_parties.len() > MAX_RELATED_PARTIES {
        return Err(Rejection::InvalidField {
            field: "related_parties",
            reason: format!("at most {MAX_RELATED_PARTIES} parties"),
        }
        .into());
    }
    if body.related_parties.contains(&body.party) {
        return Err(Rejection::InvalidField {
            field: "related_parties",
            reason: "a party is not its own affiliate".into(),
        }
        .into());
    }
    Ok(vec![Event::AffiliationDeclared {
        party: body.party,
        controlling_group: body.controlling_group.clone(),
        related_parties: body.related_parties.clone(),
    }])
}

fn update_party<S: StateRead + StateWrite>(
    state: &mut S,
    key: &PublicKey,
    change: impl FnOnce(&mut PartyRecord),
) -> Result<(), StateError> {
    let mut party = load_party(state, key)?.ok_or_else(|| StateError::Corrupt {
        key: format!("party/{key}"),
        reason: "the party of a standing event is missing".into(),
    })?;
    change(&mut party);
    state.put(party_key(key), &party);
    Ok(())
}

pub(super) fn evolve<S: StateRead + StateWrite>(
    state: &mut S,
    _ctx: &ApplyContext,
    event: &Event,
) -> Result<(), StateError> {
    match event {
        Event::AgencyAccredited {
            agency,
            expires_at_ms,
        } => update_party(state, agency, |p| {
            p.accredited_until_ms = Some(*expires_at_ms)
        }),
        Event::PartySuspended { key, .. } => update_party(state, key, |p| p.suspended = true),
        Event::PartyReinstated { key, .. } => update_party(state, key, |p| p.suspended = false),
        Event::AffiliationDeclared {
            party,
            controlling_group,
            related_parties,
        } => update_party(state, party, |p| {
            p.controlling_group = controlling_group.clone();
            p.related_parties = related_parties.clone();
        }),
        _ => unreachable!("standing::evolve is called only for standing events"),
    }
}
