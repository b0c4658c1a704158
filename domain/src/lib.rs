//! The one state machine: `state + command + context -> events or a rejection`.
//!
//! Pure by construction: no disk, no clock, no network. State is read through [`StateRead`] and
//! changed only by [`evolve`], which folds events into records; the writer, the rebuild and a
//! regulator's replay all run this same code.

pub mod limits;
pub mod schema;
pub mod text;
pub mod types;

pub mod catalog;
pub mod claims;
mod command;
mod event;
pub mod federation;
pub mod money;
pub mod orders;
mod parties;
pub mod permissions;
pub mod programs;
pub mod queries;
mod rejection;
pub mod routing;
pub mod settlement;
pub mod standing;
mod state;
pub mod vouchers;

pub use command::{Command, CommandType, GenesisBody, RegisterPartyBody, RevokeKeyBody};
pub use event::{encode_events, Event};
pub use parties::{load_party, PartyRecord, RegionRecord, Role};
pub use rejection::{Refusal, Rejection};
pub use state::{
    decode_record, encode_record, merged_scan, MemoryState, Overlay, ScannedRecords, StateError,
    StateRead, StateWrite, STATE_RECORD_ENCODING,
};

use crate::types::{LogIndex, RegionId, TimeMs};
use vledger_tlog::keys::PublicKey;

/// What the state machine knows about the entry it is deciding, besides the command.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    /// The index the entry will have.
    pub index: LogIndex,
    /// The node's time for the entry; the only clock the domain sees.
    pub node_time_ms: TimeMs,
    /// The region this node serves.
    pub region: RegionId,
    /// The node's own key (the only key that may sign genesis and time-driven commands).
    pub node_key: PublicKey,
}

/// Why applying failed: the command was refused, or state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Decides a command and, if accepted, folds its events into `state`. On a rejection nothing in
/// `state` has changed. A command whose events are longer than an entry records
/// ([`limits::MAX_EVENTS_BYTES`]) is refused with [`Rejection::EntryTooLarge`].
pub fn apply<S: StateRead + StateWrite>(
    state: &mut S,
    ctx: &ApplyContext,
    signer: &PublicKey,
    command: &Command,
) -> Result<Vec<Event>, ApplyError> {
    apply_within(state, ctx, signer, command, limits::MAX_EVENTS_BYTES).map(|(events, _)| events)
}

/// [`apply`], answering the canonical bytes of the events ([`encode_events`]), which the entry
/// records: what the writer and a replay need, encoded once.
pub fn apply_encoded<S: StateRead + StateWrite>(
    state: &mut S,
    ctx: &ApplyContext,
    signer: &PublicKey,
    command: &Command,
) -> Result<Vec<u8>, ApplyError> {
    apply_within(state, ctx, signer, command, limits::MAX_EVENTS_BYTES).map(|(_, bytes)| bytes)
}

/// [`apply`] with the bound on the events' bytes as a parameter (tests give it a small one: no
/// command of the domain comes near the real one).
fn apply_within<S: StateRead + StateWrite>(
    state: &mut S,
    ctx: &ApplyContext,
    signer: &PublicKey,
    command: &Command,
    max_events_bytes: usize,
) -> Result<(Vec<Event>, Vec<u8>), ApplyError> {
    let events = decide(state, ctx, signer, command)?;
    let bytes = encode_within(&events, max_events_bytes)?;
    for event in &events {
        evolve(state, ctx, event)?;
    }
    Ok((events, bytes))
}

/// The canonical bytes of a decided command's events ([`encode_events`]), or
/// [`Rejection::EntryTooLarge`] if they are longer than an entry records: the check [`apply`]
/// makes between deciding and evolving, for a caller that decides and evolves itself (a replay).
pub fn encode_decided(events: &[Event]) -> Result<Vec<u8>, Rejection> {
    encode_within(events, limits::MAX_EVENTS_BYTES)
}

fn encode_within(events: &[Event], max_events_bytes: usize) -> Result<Vec<u8>, Rejection> {
    let bytes = event::encode_events_unbounded(events);
    if bytes.len() > max_events_bytes {
        return Err(Rejection::EntryTooLarge {
            events_bytes: bytes.len(),
            max_events_bytes,
        });
    }
    Ok(bytes)
}

/// Checks a command against the state and returns the events it produces: first the signer's
/// standing, then who may sign it ([`permissions`], once), then the command's own rules.
pub fn decide<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    signer: &PublicKey,
    command: &Command,
) -> Result<Vec<Event>, ApplyError> {
    let region = parties::load_region(state)?;
    match (command, region) {
        (Command::Genesis(body), None) => {
            permissions::authorize_genesis(ctx, signer, command)?;
            Ok(parties::decide_genesis(ctx, body)?)
        }
        (Command::Genesis(_), Some(_)) => Err(Rejection::GenesisAlreadyDone.into()),
        (_, None) => Err(Rejection::GenesisRequired.into()),
        (command, Some(region)) => {
            let actor = parties::active_signer(state, signer)?;
            permissions::authorize(state, ctx, &actor, command)?;
            match command {
                Command::Genesis(_) => unreachable!("handled above"),
                Command::RegisterParty(body) => parties::decide_register(state, &region, body),
                Command::RevokeKey(body) => parties::decide_revoke(state, &region, body),
                Command::CreateProgram(terms) => programs::decide_create(state, &region, terms),
                Command::QualifyEnterprise(body) => programs::decide_qualify(state, ctx, body),
                Command::IssueVoucher(body) => vouchers::decide_issue(state, ctx, body),
                Command::FreezeVoucher(body) => vouchers::decide_freeze(state, &actor, body, true),
                Command::UnfreezeVoucher(body) => {
                    vouchers::decide_freeze(state, &actor, body, false)
                }
                Command::RevokeVoucher(body) => vouchers::decide_revoke(state, body),
                Command::ExpireVoucher(body) => vouchers::decide_expire(state, ctx, body),
                Command::AccreditAgency(body) => standing::decide_accredit(state, ctx, body),
                Command::SuspendParty(body) => standing::decide_suspend(state, &actor, body, true),
                Command::ReinstateParty(body) => {
                    standing::decide_suspend(state, &actor, body, false)
                }
                Command::DeclareAffiliation(body) => standing::decide_affiliation(state, body),
                Command::AddListing(body) => catalog::decide_list(state, &actor, body),
                Command::UpdateListing(body) => catalog::decide_update(state, body),
                Command::WithdrawListing(body) => catalog::decide_withdraw(state, &actor, body),
                Command::PostDemand(body) => catalog::decide_post_demand(state, &actor, body),
                Command::CloseDemand(body) => catalog::decide_close_demand(state, body),
                Command::PlaceOrder(body) => orders::decide_place(state, ctx, &actor, body),
                Command::CancelOrder(body) => orders::decide_cancel(state, body),
                Command::FundEscrow(body) => orders::decide_fund_escrow(state, body),
                Command::AcknowledgePayment(body) => orders::decide_acknowledge(state, body),
                Command::DeliverOrder(body) => orders::decide_deliver(state, body),
                Command::ConfirmOrder(body) => orders::decide_confirm(state, body),
                Command::AutoConfirmOrder(body) => orders::decide_auto_confirm(state, ctx, body),
                Command::DisputeOrder(body) => orders::decide_dispute(state, body),
                Command::ResolveDispute(body) => orders::decide_resolve(state, body),
                Command::SubmitClaim(body) => claims::decide_submit(state, ctx, body),
                Command::ReviewClaim(body) => claims::decide_review(state, ctx, &actor, body),
                Command::PayClaim(body) => claims::decide_pay(state, ctx, body),
                Command::ClawbackClaim(body) => claims::decide_clawback(state, body),
                Command::RecoverClaim(body) => claims::decide_recover(state, body),
                Command::ReleaseUnclaimed(body) => {
                    orders::decide_release_unclaimed(state, ctx, body)
                }
                Command::Adopt(body) => federation::decide_adopt(state, ctx, body),
                Command::ProposeStatement(body) => {
                    settlement::decide_propose(state, ctx, &region, &actor, body)
                }
                Command::SignStatement(body) => settlement::decide_sign(state, &actor, body),
                Command::RecordStatementPayment(body) => {
                    settlement::decide_record_payment(state, &actor, body)
                }
            }
        }
    }
}

/// Folds one event into the state records.
pub fn evolve<S: StateRead + StateWrite>(
    state: &mut S,
    ctx: &ApplyContext,
    event: &Event,
) -> Result<(), StateError> {
    match event {
        Event::RegionFounded { .. } | Event::PartyRegistered { .. } | Event::KeyRevoked { .. } => {
            parties::evolve(state, ctx, event)
        }
        Event::ProgramCreated { .. } | Event::EnterpriseQualified { .. } => {
            programs::evolve(state, ctx, event)
        }
        Event::VoucherIssued { .. }
        | Event::VoucherFrozen { .. }
        | Event::VoucherUnfrozen { .. }
        | Event::VoucherRevoked { .. }
        | Event::VoucherExpired { .. } => vouchers::evolve(state, ctx, event),
        Event::AgencyAccredited { .. }
        | Event::PartySuspended { .. }
        | Event::PartyReinstated { .. }
        | Event::AffiliationDeclared { .. } => standing::evolve(state, ctx, event),
        Event::ListingAdded { .. }
        | Event::ListingUpdated { .. }
        | Event::ListingWithdrawn { .. }
        | Event::DemandPosted { .. }
        | Event::DemandClosed { .. } => catalog::evolve(state, ctx, event),
        Event::OrderPlaced { .. }
        | Event::EscrowFunded { .. }
        | Event::InstallmentPaid { .. }
        | Event::OrderDelivered { .. }
        | Event::OrderDisputed { .. }
        | Event::OrderConfirmed { .. }
        | Event::OrderCancelled { .. }
        | Event::UnclaimedShareReleased { .. }
        | Event::FraudFlagged { .. } => orders::evolve(state, ctx, event),
        Event::ClaimSubmitted { .. }
        | Event::ClaimReviewed { .. }
        | Event::ClaimApproved { .. }
        | Event::ClaimRejected { .. }
        | Event::ClaimPaid { .. }
        | Event::ClaimClawedBack { .. }
        | Event::ClaimRecovered { .. } => claims::evolve(state, ctx, event),
        Event::RegionAdopted { .. } => federation::evolve(state, ctx, event),
        Event::StatementProposed { .. }
        | Event::StatementSigned { .. }
        | Event::StatementPaid { .. } => settlement::evolve(state, ctx, event),
    }
}

#[cfg(test)]
mod catalog_tests;
#[cfg(test)]
mod orders_tests;
#[cfg(test)]
mod settlement_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vouchers_tests;
