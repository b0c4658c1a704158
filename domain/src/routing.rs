//! Which region's log each command belongs in: the rule a client follows to send a command to
//! the right node of the federation, so that a user names the record, not the node.
//!
//! Every record has one home log (docs/FORMAT.md §16, "Which node takes a command"): a party
//! and a listing live in their party's home region's log, an order and its claim in the log of
//! the voucher's funding region, a statement in its debtor's log. [`home_log`] says, per
//! command, which record's home decides: the signer's own (for the commands of a region's
//! admins and regulators, which act in their own region only, and for the records a party
//! founds in its home log), or that of the record the body names. A client resolves it from the federation map: the signer's home
//! region from `GET /v1/parties/{key}`, a record's from the node of the region that holds it.

use super::Command;
use crate::types::RecordId;

/// What decides the log a command belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeLog<'a> {
    /// The signer's home region: an admin's or regulator's command, or a record the signer
    /// founds in its home log (a listing, a demand, a statement it proposes as the debtor).
    Signer,
    /// The region whose log holds this voucher (its funding region): an order on it lives there.
    Voucher(&'a RecordId),
    /// The region whose log holds this order (its voucher's funding region), with its escrow,
    /// delivery, claim and payout.
    Order(&'a RecordId),
    /// The region whose log holds this demand (the one it was posted in).
    Demand(&'a RecordId),
    /// The region whose log holds this statement (its debtor).
    Statement(&'a RecordId),
    /// The node that signs it for its own log (genesis, adoption, the node's timers): no client
    /// routes it.
    NodeOwn,
}

/// What decides the log `command` belongs in.
pub fn home_log(command: &Command) -> HomeLog<'_> {
    match command {
        Command::Genesis(_)
        | Command::ExpireVoucher(_)
        | Command::AutoConfirmOrder(_)
        | Command::ReleaseUnclaimed(_)
        | Command::Adopt(_) => HomeLog::NodeOwn,
        Command::RegisterParty(_)
        | Command::RevokeKey(_)
        | Command::CreateProgram(_)
        | Command::QualifyEnterprise(_)
        | Command::IssueVoucher(_)
        | Command::AccreditAgency(_)
        | Command::SuspendParty(_)
        | Command::ReinstateParty(_)
        | Command::DeclareAffiliation(_)
        | Command::AddListing(_)
        | Command::UpdateListing(_)
        | Command::WithdrawListing(_)
        | Command::PostDemand(_)
        | Command::ProposeStatement(_)
        | Command::RecordStatementPayment(_) => HomeLog::Signer,
        Command::FreezeVoucher(body)
        | Command::UnfreezeVoucher(body)
        | Command::RevokeVoucher(body) => HomeLog::Voucher(&body.voucher_id),
        Command::PlaceOrder(body) => HomeLog::Voucher(&body.voucher_id),
        Command::CloseDemand(body) => HomeLog::Demand(&body.demand_id),
        Command::CancelOrder(body) | Command::ConfirmOrder(body) | Command::DisputeOrder(body) => {
            HomeLog::Order(&body.order_id)
        }
        Command::FundEscrow(body) => HomeLog::Order(&body.order_id),
        Command::AcknowledgePayment(body) => HomeLog::Order(&body.order_id),
        Command::DeliverOrder(body) => HomeLog::Order(&body.order_id),
        Command::ResolveDispute(body) => HomeLog::Order(&body.order_id),
        Command::SubmitClaim(body) => HomeLog::Order(&body.order_id),
        Command::ReviewClaim(body) => HomeLog::Order(&body.order_id),
        Command::PayClaim(body) => HomeLog::Order(&body.order_id),
        Command::ClawbackClaim(body) => HomeLog::Order(&body.order_id),
        Command::RecoverClaim(body) => HomeLog::Order(&body.order_id),
        Command::SignStatement(body) => HomeLog::Statement(&body.statement_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::examples;
    use crate::permissions::{other_regions, rule, OtherRegions};
    use crate::CommandType;

    /// A command that a party of another region may sign here is routed by the record it names,
    /// never by the signer's home: otherwise the lab's delivery would go to the lab's own node.
    #[test]
    fn a_command_signed_across_regions_is_routed_by_its_record() {
        for command_type in CommandType::ALL {
            let command = examples::command(command_type);
            let home = home_log(&command);
            let names_a_party_of_a_record = !rule(command_type).parties().is_empty();
            if names_a_party_of_a_record && other_regions(command_type) != OtherRegions::Nobody {
                assert_ne!(home, HomeLog::Signer, "{command_type}");
                assert_ne!(home, HomeLog::NodeOwn, "{command_type}");
            }
        }
    }
}
