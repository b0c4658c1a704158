//! Who may sign each command: the one table of it.
//!
//! [`rule`] gives every command type its [`Permission`] in one exhaustive `match`: the roles that
//! may sign it, or, where the right depends on a record the command names, which party of that
//! record (the order's enterprise, the listing's agency, the party the body names, ...).
//! [`crate::decide`] consults it once for each command, after the signer's own standing (known,
//! not revoked, not suspended) and before the command's own rules; no command module checks a
//! role or an owner itself.
//!
//! A refusal says what was required and who signed (a [`Refusal`]), with the stable code of the
//! rule that refused: `not-authorized`, or the party's own code (`not-voucher-holder`,
//! `not-listing-owner`, `not-demand-owner`). A record that does not exist, or that has no such
//! party (an order paid directly has no escrow provider), admits nobody and refuses nobody here:
//! the command's own rules then say what is missing.

use super::catalog::{load_demand, load_listing, DemandRecord, ListingRecord};
use super::orders::{load_order, OrderRecord};
use super::parties::{PartyRecord, Role};
use super::programs::{load_program, ProgramRecord};
use super::rejection::Refusal;
use super::settlement::{load_statement, StatementRecord};
use super::state::{StateError, StateRead};
use super::vouchers::{load_voucher, VoucherRecord};
use super::{ApplyContext, ApplyError, Command, CommandType, Rejection};
use crate::types::{RecordId, RegionId};
use vledger_tlog::keys::PublicKey;

/// Who may sign a command type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// The node's own key, which founds the region before any party is registered.
    NodeKey,
    /// A party holding one of these roles; any other is refused `not-authorized`.
    Roles(&'static [Role]),
    /// Any one of these signers. A signer who is none of them is refused with the code of the
    /// first party listed.
    AnyOf(&'static [Signer]),
    /// A party holding the role that is also the party of the command's record: a signer of
    /// another role is refused `not-authorized` whatever the record, another party of the role
    /// with the party's code.
    RoleAndParty(Role, Party),
}

/// One signer a [`Permission::AnyOf`] admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// Any party holding this role.
    Role(Role),
    /// This party of the command's record.
    Party(Party),
}

/// A party of the record a command names, who may sign it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The party whose key the body names (`key` of `party.revoke_key`, `party` of
    /// `party.declare_affiliation`): a party acting on itself.
    Named,
    /// The enterprise that holds the voucher the command spends.
    VoucherHolder,
    /// The agency that listed the listing.
    ListingAgency,
    /// An admin whose home region is the listing's region.
    ListingRegionAdmin,
    /// The enterprise that posted the demand.
    DemandEnterprise,
    /// The enterprise that placed the order.
    OrderEnterprise,
    /// The agency the order was placed with.
    OrderAgency,
    /// The escrow provider of an order paid through escrow.
    OrderEscrowProvider,
    /// An admin whose home region is the statement's debtor (this log's region) or its
    /// creditor: a party of another region that may act here as an admin.
    StatementRegionAdmin,
    /// An admin of the region that pays the claim: the voucher's funding region (this log's),
    /// or, when the program has the agency's region advance cross-region payouts, the agency's
    /// region, whose admin signs the payout here.
    ClaimPayerAdmin,
}

/// Who may sign each command type.
pub fn rule(command_type: CommandType) -> Permission {
    use CommandType as T;
    use Permission::{AnyOf, NodeKey, RoleAndParty, Roles};
    const ADMIN: &[Role] = &[Role::Admin];
    const ADMIN_OR_REGULATOR: &[Role] = &[Role::Admin, Role::Regulator];
    const NODE: &[Role] = &[Role::Node];
    match command_type {
        T::Genesis => NodeKey,
        T::RegisterParty => Roles(ADMIN),
        T::RevokeKey => AnyOf(&[Signer::Party(Party::Named), Signer::Role(Role::Admin)]),
        T::CreateProgram => Roles(ADMIN),
        T::QualifyEnterprise => Roles(ADMIN),
        T::IssueVoucher => Roles(ADMIN),
        T::FreezeVoucher => Roles(ADMIN_OR_REGULATOR),
        T::UnfreezeVoucher => Roles(ADMIN_OR_REGULATOR),
        T::RevokeVoucher => Roles(ADMIN),
        T::ExpireVoucher => Roles(NODE),
        T::AccreditAgency => Roles(ADMIN),
        T::SuspendParty => Roles(ADMIN_OR_REGULATOR),
        T::ReinstateParty => Roles(ADMIN_OR_REGULATOR),
        T::DeclareAffiliation => AnyOf(&[Signer::Party(Party::Named), Signer::Role(Role::Admin)]),
        T::AddListing => Roles(&[Role::Agency]),
        T::UpdateListing => AnyOf(&[Signer::Party(Party::ListingAgency)]),
        T::WithdrawListing => AnyOf(&[
            Signer::Party(Party::ListingAgency),
            Signer::Party(Party::ListingRegionAdmin),
        ]),
        T::PostDemand => Roles(&[Role::Enterprise]),
        T::CloseDemand => AnyOf(&[Signer::Party(Party::DemandEnterprise)]),
        T::PlaceOrder => RoleAndParty(Role::Enterprise, Party::VoucherHolder),
        T::CancelOrder => AnyOf(&[
            Signer::Party(Party::OrderEnterprise),
            Signer::Party(Party::OrderAgency),
        ]),
        T::FundEscrow => RoleAndParty(Role::Escrow, Party::OrderEscrowProvider),
        T::AcknowledgePayment => AnyOf(&[Signer::Party(Party::OrderAgency)]),
        T::DeliverOrder => AnyOf(&[Signer::Party(Party::OrderAgency)]),
        T::ConfirmOrder => AnyOf(&[Signer::Party(Party::OrderEnterprise)]),
        T::AutoConfirmOrder => Roles(NODE),
        T::DisputeOrder => AnyOf(&[Signer::Party(Party::OrderEnterprise)]),
        T::ResolveDispute => Roles(ADMIN),
        T::SubmitClaim => AnyOf(&[Signer::Party(Party::OrderAgency)]),
        T::ReviewClaim => Roles(ADMIN),
        T::PayClaim => RoleAndParty(Role::Admin, Party::ClaimPayerAdmin),
        T::ClawbackClaim => Roles(ADMIN_OR_REGULATOR),
        T::ReleaseUnclaimed => Roles(NODE),
        T::RecoverClaim => Roles(ADMIN),
        T::Adopt => Roles(NODE),
        T::ProposeStatement => Roles(ADMIN),
        T::SignStatement => RoleAndParty(Role::Admin, Party::StatementRegionAdmin),
        T::RecordStatementPayment => Roles(ADMIN),
    }
}

/// Which signers of another region of the federation a command type admits on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherRegions {
    /// None: the command changes a record that lives in its signer's home log (a party, a
    /// listing), or it is signed by roles that act in their own region only.
    Nobody,
    /// The agencies, enterprises and escrow providers the row admits, of whichever region:
    /// they serve the whole market (a Chengdu lab delivers and claims a Chongqing order on
    /// Chongqing's node).
    MarketRoles,
    /// Besides this region's admins, the admin of the statement's creditor region.
    CreditorAdmin,
    /// The admin of the region that advances the payout, instead of this region's.
    AdvancingAdmin,
}

/// The record a command type changes that lives in its signer's home log, in words (a party,
/// a listing); the node of another region refuses such a command `home-region-mismatch`,
/// whoever signs it. `None` for commands on this log's own records. A demand lives in the log
/// it is posted in: an enterprise of any region may seek services in any region's market.
pub fn home_log_record(command_type: CommandType) -> Option<&'static str> {
    use CommandType as T;
    match command_type {
        T::RevokeKey | T::DeclareAffiliation => Some("a party"),
        T::AddListing | T::UpdateListing | T::WithdrawListing => Some("a listing"),
        T::Genesis
        | T::PostDemand
        | T::CloseDemand
        | T::RegisterParty
        | T::CreateProgram
        | T::QualifyEnterprise
        | T::IssueVoucher
        | T::FreezeVoucher
        | T::UnfreezeVoucher
        | T::RevokeVoucher
        | T::ExpireVoucher
        | T::AccreditAgency
        | T::SuspendParty
        | T::ReinstateParty
        | T::PlaceOrder
        | T::CancelOrder
        | T::FundEscrow
        | T::AcknowledgePayment
        | T::DeliverOrder
        | T::ConfirmOrder
        | T::AutoConfirmOrder
        | T::DisputeOrder
        | T::ResolveDispute
        | T::SubmitClaim
        | T::ReviewClaim
        | T::PayClaim
        | T::ClawbackClaim
        | T::ReleaseUnclaimed
        | T::RecoverClaim
        | T::Adopt
        | T::ProposeStatement
        | T::SignStatement
        | T::RecordStatementPayment => None,
    }
}

/// Which signers of another region `command_type` admits, from its row and [`home_log_record`].
pub fn other_regions(command_type: CommandType) -> OtherRegions {
    let permission = rule(command_type);
    if home_log_record(command_type).is_some() {
        return OtherRegions::Nobody;
    }
    for party in permission.parties() {
        match party {
            Party::StatementRegionAdmin => return OtherRegions::CreditorAdmin,
            Party::ClaimPayerAdmin => return OtherRegions::AdvancingAdmin,
            _ => {}
        }
    }
    let market_role = |role: &Role| role.acts_across_regions();
    let admits_market_role = match permission {
        Permission::NodeKey => false,
        Permission::Roles(roles) => roles.iter().any(market_role),
        Permission::RoleAndParty(role, _) => market_role(&role),
        Permission::AnyOf(signers) => signers.iter().any(|signer| match signer {
            Signer::Role(role) => market_role(role),
            Signer::Party(party) => party.role().is_some_and(|role| market_role(&role)),
        }),
    };
    if admits_market_role {
        OtherRegions::MarketRoles
    } else {
        OtherRegions::Nobody
    }
}

impl OtherRegions {
    /// In words, for the documented table.
    pub fn describe(self) -> &'static str {
        match self {
            OtherRegions::Nobody => "nobody",
            OtherRegions::MarketRoles => "the same, of any region",
            OtherRegions::CreditorAdmin => "the creditor region's admin",
            OtherRegions::AdvancingAdmin => "the advancing region's admin",
        }
    }
}

/// Every command type with who may sign it, in the order of [`CommandType::ALL`].
pub fn table() -> impl Iterator<Item = (CommandType, Permission)> {
    CommandType::ALL.into_iter().map(|t| (t, rule(t)))
}

impl Permission {
    /// Who may sign, in words: "an admin or a regulator", "the order's enterprise".
    pub fn describe(self) -> String {
        match self {
            Permission::NodeKey => "the node's own key".into(),
            Permission::Roles(roles) => either(roles.iter().map(|r| a_role(*r).to_string())),
            Permission::AnyOf(signers) => either(signers.iter().map(|s| match s {
                Signer::Role(role) => a_role(*role).to_string(),
                Signer::Party(party) => party.describe().to_string(),
            })),
            Permission::RoleAndParty(_, party) => party.describe().into(),
        }
    }

    /// The codes a signer this permission does not admit is refused with (once the signer is
    /// known, active and not suspended): for [`Permission::RoleAndParty`], another role's and
    /// another party's.
    pub fn refusal_codes(self) -> Vec<&'static str> {
        let not_authorized = Rejection::NotAuthorized(Refusal::default()).code();
        match self {
            Permission::NodeKey => vec![Rejection::GenesisSignerNotNode.code()],
            Permission::Roles(_) => vec![not_authorized],
            Permission::AnyOf(_) => match self.parties().first() {
                Some(party) => vec![party.refusal_code()],
                None => vec![not_authorized],
            },
            Permission::RoleAndParty(_, party) => {
                let mut codes = vec![not_authorized, party.refusal_code()];
                codes.dedup();
                codes
            }
        }
    }

    /// The parties of the command's record this permission names.
    pub fn parties(self) -> Vec<Party> {
        match self {
            Permission::NodeKey | Permission::Roles(_) => Vec::new(),
            Permission::AnyOf(signers) => signers
                .iter()
                .filter_map(|s| match s {
                    Signer::Party(party) => Some(*party),
                    Signer::Role(_) => None,
                })
                .collect(),
            Permission::RoleAndParty(_, party) => vec![party],
        }
    }
}

impl Party {
    /// The party in words: "the order's enterprise".
    pub fn describe(self) -> &'static str {
        match self {
            Party::Named => "the party the body names",
            Party::VoucherHolder => "the voucher's holder",
            Party::ListingAgency => "the listing's agency",
            Party::ListingRegionAdmin => "an admin of the listing's region",
            Party::DemandEnterprise => "the demand's enterprise",
            Party::OrderEnterprise => "the order's enterprise",
            Party::OrderAgency => "the order's agency",
            Party::OrderEscrowProvider => "the order's escrow provider",
            Party::StatementRegionAdmin => "an admin of the statement's debtor or creditor region",
            Party::ClaimPayerAdmin => "an admin of the region that pays the claim",
        }
    }

    /// The role this party holds, if it is one role (the party the body names may be any).
    pub fn role(self) -> Option<Role> {
        match self {
            Party::Named => None,
            Party::VoucherHolder | Party::DemandEnterprise | Party::OrderEnterprise => {
                Some(Role::Enterprise)
            }
            Party::ListingAgency | Party::OrderAgency => Some(Role::Agency),
            Party::ListingRegionAdmin | Party::StatementRegionAdmin | Party::ClaimPayerAdmin => {
                Some(Role::Admin)
            }
            Party::OrderEscrowProvider => Some(Role::Escrow),
        }
    }

    /// Whether this party may be of another region although its role acts in its own region
    /// only ([`Role::acts_across_regions`]): the creditor's admin signing a statement, the
    /// advancing region's admin paying a claim.
    fn admits_foreign_authority(self) -> bool {
        matches!(self, Party::StatementRegionAdmin | Party::ClaimPayerAdmin)
    }

    /// The rejection of a signer who is not this party.
    fn refuse(self, refusal: Refusal) -> Rejection {
        match self {
            Party::VoucherHolder => Rejection::NotVoucherHolder(refusal),
            Party::ListingAgency | Party::ListingRegionAdmin => Rejection::NotListingOwner(refusal),
            Party::DemandEnterprise => Rejection::NotDemandOwner(refusal),
            Party::Named
            | Party::OrderEnterprise
            | Party::OrderAgency
            | Party::OrderEscrowProvider
            | Party::StatementRegionAdmin
            | Party::ClaimPayerAdmin => Rejection::NotAuthorized(refusal),
        }
    }

    /// The code a signer who is not this party is refused with.
    pub fn refusal_code(self) -> &'static str {
        self.refuse(Refusal::default()).code()
    }

    /// The kind of record this party is found in.
    #[cfg(test)]
    fn record_kind(self) -> RecordKind {
        match self {
            Party::Named => RecordKind::Key,
            Party::VoucherHolder => RecordKind::Voucher,
            Party::ListingAgency | Party::ListingRegionAdmin => RecordKind::Listing,
            Party::DemandEnterprise => RecordKind::Demand,
            Party::OrderEnterprise | Party::OrderAgency | Party::OrderEscrowProvider => {
                RecordKind::Order
            }
            Party::StatementRegionAdmin => RecordKind::Statement,
            Party::ClaimPayerAdmin => RecordKind::Payout,
        }
    }

    /// Whether `actor` is this party of `record`; `None` when the record has no such party.
    fn is(self, record: &Record, actor: &PartyRecord) -> Option<bool> {
        match (self, record) {
            (Party::Named, Record::Key(key)) => Some(*key == actor.key),
            (Party::VoucherHolder, Record::Voucher(voucher)) => Some(voucher.holder == actor.key),
            (Party::ListingAgency, Record::Listing(listing)) => Some(listing.agency == actor.key),
            (Party::ListingRegionAdmin, Record::Listing(listing)) => {
                Some(actor.role == Role::Admin && actor.home_region == listing.region)
            }
            (Party::DemandEnterprise, Record::Demand(demand)) => {
                Some(demand.enterprise == actor.key)
            }
            (Party::OrderEnterprise, Record::Order(order)) => Some(order.enterprise == actor.key),
            (Party::OrderAgency, Record::Order(order)) => Some(order.agency == actor.key),
            (Party::OrderEscrowProvider, Record::Order(order)) => {
                order.escrow.as_ref().map(|e| e.provider == actor.key)
            }
            (Party::StatementRegionAdmin, Record::Statement(statement)) => Some(
                actor.role == Role::Admin
                    && (actor.home_region == statement.debtor
                        || actor.home_region == statement.creditor),
            ),
            (Party::ClaimPayerAdmin, Record::Payout { payer }) => {
                Some(actor.role == Role::Admin && actor.home_region == *payer)
            }
            (party, record) => unreachable!(
                "the permission table names {party:?} for a command that names {:?}",
                record.kind()
            ),
        }
    }
}

/// The kinds of record a command's parties are found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordKind {
    Key,
    Voucher,
    Listing,
    Demand,
    Order,
    Statement,
    Payout,
}

/// What a command names that its permission's parties are found in.
enum Subject<'a> {
    Key(&'a PublicKey),
    Voucher(&'a RecordId),
    Listing(&'a RecordId),
    Demand(&'a RecordId),
    Order(&'a RecordId),
    Statement(&'a RecordId),
    /// The claim of this order, to be paid.
    Payout(&'a RecordId),
}

impl Subject<'_> {
    /// What `command` names, if its right may depend on a record.
    fn of(command: &Command) -> Option<Subject<'_>> {
        match command {
            Command::RevokeKey(body) => Some(Subject::Key(&body.key)),
            Command::DeclareAffiliation(body) => Some(Subject::Key(&body.party)),
            Command::PlaceOrder(body) => Some(Subject::Voucher(&body.voucher_id)),
            Command::UpdateListing(body) => Some(Subject::Listing(&body.listing_id)),
            Command::WithdrawListing(body) => Some(Subject::Listing(&body.listing_id)),
            Command::CloseDemand(body) => Some(Subject::Demand(&body.demand_id)),
            Command::CancelOrder(body)
            | Command::ConfirmOrder(body)
            | Command::DisputeOrder(body) => Some(Subject::Order(&body.order_id)),
            Command::FundEscrow(body) => Some(Subject::Order(&body.order_id)),
            Command::AcknowledgePayment(body) => Some(Subject::Order(&body.order_id)),
            Command::DeliverOrder(body) => Some(Subject::Order(&body.order_id)),
            Command::SubmitClaim(body) => Some(Subject::Order(&body.order_id)),
            Command::SignStatement(body) => Some(Subject::Statement(&body.statement_id)),
            Command::PayClaim(body) => Some(Subject::Payout(&body.order_id)),
            Command::Genesis(_)
            | Command::RegisterParty(_)
            | Command::CreateProgram(_)
            | Command::QualifyEnterprise(_)
            | Command::IssueVoucher(_)
            | Command::FreezeVoucher(_)
            | Command::UnfreezeVoucher(_)
            | Command::RevokeVoucher(_)
            | Command::ExpireVoucher(_)
            | Command::AccreditAgency(_)
            | Command::SuspendParty(_)
            | Command::ReinstateParty(_)
            | Command::AddListing(_)
            | Command::PostDemand(_)
            | Command::AutoConfirmOrder(_)
            | Command::ResolveDispute(_)
            | Command::ReviewClaim(_)
            | Command::ClawbackClaim(_)
            | Command::ReleaseUnclaimed(_)
            | Command::RecoverClaim(_)
            | Command::Adopt(_)
            | Command::ProposeStatement(_)
            | Command::RecordStatementPayment(_) => None,
        }
    }

    #[cfg(test)]
    fn kind(&self) -> RecordKind {
        match self {
            Subject::Key(_) => RecordKind::Key,
            Subject::Voucher(_) => RecordKind::Voucher,
            Subject::Listing(_) => RecordKind::Listing,
            Subject::Demand(_) => RecordKind::Demand,
            Subject::Order(_) => RecordKind::Order,
            Subject::Statement(_) => RecordKind::Statement,
            Subject::Payout(_) => RecordKind::Payout,
        }
    }

    /// The record, as the state holds it; `None` if it does not exist.
    fn load<S: StateRead>(self, state: &S) -> Result<Option<Record>, StateError> {
        Ok(match self {
            Subject::Key(key) => Some(Record::Key(*key)),
            Subject::Voucher(id) => load_voucher(state, id)?.map(Record::Voucher),
            Subject::Listing(id) => load_listing(state, id)?.map(Record::Listing),
            Subject::Demand(id) => load_demand(state, id)?.map(Record::Demand),
            Subject::Order(id) => load_order(state, id)?.map(Record::Order),
            Subject::Statement(id) => load_statement(state, id)?.map(Record::Statement),
            Subject::Payout(id) => match load_order(state, id)? {
                Some(order) => {
                    load_program(state, &order.program_id)?.map(|program| Record::Payout {
                        payer: claim_payer(&order, &program),
                    })
                }
                None => None,
            },
        })
    }
}

/// The record a command's parties are found in. One lives on the stack for the length of one
/// permission check and is never stored, so its size costs nothing a box would save.
#[allow(clippy::large_enum_variant)]
enum Record {
    Key(PublicKey),
    Voucher(VoucherRecord),
    Listing(ListingRecord),
    Demand(DemandRecord),
    Order(OrderRecord),
    Statement(StatementRecord),
    /// The region that pays an order's claim.
    Payout {
        payer: RegionId,
    },
}

impl Record {
    /// Reads the record `command` names; `None` if it does not exist or the command names none.
    fn of<S: StateRead>(state: &S, command: &Command) -> Result<Option<Record>, StateError> {
        match Subject::of(command) {
            Some(subject) => subject.load(state),
            None => Ok(None),
        }
    }

    fn kind(&self) -> RecordKind {
        match self {
            Record::Key(_) => RecordKind::Key,
            Record::Voucher(_) => RecordKind::Voucher,
            Record::Listing(_) => RecordKind::Listing,
            Record::Demand(_) => RecordKind::Demand,
            Record::Order(_) => RecordKind::Order,
            Record::Statement(_) => RecordKind::Statement,
            Record::Payout { .. } => RecordKind::Payout,
        }
    }
}

/// The region that pays the claim of `order`: the region advancing it, or the voucher's funding
/// region.
fn claim_payer(order: &OrderRecord, program: &ProgramRecord) -> RegionId {
    super::claims::advancing_region(&order.agency_region, &order.funding_region, program)
        .unwrap_or_else(|| order.funding_region.clone())
}

/// Checks that the node's own key signs `region.genesis`, the one command before any party.
pub(crate) fn authorize_genesis(
    ctx: &ApplyContext,
    signer: &PublicKey,
    command: &Command,
) -> Result<(), Rejection> {
    match rule(command.command_type()) {
        Permission::NodeKey if *signer == ctx.node_key => Ok(()),
        Permission::NodeKey => Err(Rejection::GenesisSignerNotNode),
        other => unreachable!("only genesis comes before any party; its rule is {other:?}"),
    }
}

/// Checks that `actor`, an active party, may sign `command`, before the command's own rules.
pub(crate) fn authorize<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    actor: &PartyRecord,
    command: &Command,
) -> Result<(), ApplyError> {
    let permission = rule(command.command_type());
    if let Some(record) = home_log_record(command.command_type()) {
        if actor.home_region != ctx.region {
            return Err(Rejection::HomeRegionMismatch {
                record,
                node_region: ctx.region.to_string(),
                home_region: actor.home_region.to_string(),
            }
            .into());
        }
    }
    if actor.home_region != ctx.region && !actor.role.acts_across_regions() {
        // A node, admin or regulator of another region acts here only as a party the row names
        // that may be of another region, and only when it is that party of the record.
        return match foreign_authority_admitted(state, permission, actor, command)? {
            true => Ok(()),
            false => Err(Rejection::ForeignAuthority {
                home_region: actor.home_region.to_string(),
                role: a_role(actor.role).to_string(),
            }
            .into()),
        };
    }
    let refusal = |parties: &[Party]| Refusal {
        command: command.command_type().name(),
        required: permission.describe(),
        signer: signer_words(actor, parties),
    };
    match permission {
        Permission::NodeKey if actor.key == ctx.node_key => Ok(()),
        Permission::NodeKey => Err(Rejection::GenesisSignerNotNode.into()),
        Permission::Roles(roles) if roles.contains(&actor.role) => Ok(()),
        Permission::Roles(_) => Err(Rejection::NotAuthorized(refusal(&[])).into()),
        Permission::RoleAndParty(role, _) if actor.role != role => {
            Err(Rejection::NotAuthorized(refusal(&[])).into())
        }
        Permission::RoleAndParty(_, party) => match Record::of(state, command)? {
            Some(record) if party.is(&record, actor) == Some(false) => {
                Err(party.refuse(refusal(&[party])).into())
            }
            _ => Ok(()),
        },
        Permission::AnyOf(signers) => {
            if signers.contains(&Signer::Role(actor.role)) {
                return Ok(());
            }
            let parties = permission.parties();
            let Some(&first) = parties.first() else {
                return Err(Rejection::NotAuthorized(refusal(&[])).into());
            };
            let Some(record) = Record::of(state, command)? else {
                return Ok(());
            };
            if parties.iter().any(|p| p.is(&record, actor) != Some(false)) {
                return Ok(());
            }
            Err(first.refuse(refusal(&parties)).into())
        }
    }
}

/// Whether `actor`, of another region and of a role that acts in its own region only, is a party
/// of the command's record that its row admits from another region: an admin of the statement's
/// creditor region signing it. A record that does not exist admits nobody from another region.
fn foreign_authority_admitted<S: StateRead>(
    state: &S,
    permission: Permission,
    actor: &PartyRecord,
    command: &Command,
) -> Result<bool, StateError> {
    let parties: Vec<Party> = permission
        .parties()
        .into_iter()
        .filter(|p| p.admits_foreign_authority() && p.role() == Some(actor.role))
        .collect();
    if parties.is_empty() {
        return Ok(false);
    }
    let Some(record) = Record::of(state, command)? else {
        return Ok(false);
    };
    Ok(parties.iter().any(|p| p.is(&record, actor) == Some(true)))
}

/// The signer in words: its role, and, when the role is right, that it is not the party.
fn signer_words(actor: &PartyRecord, parties: &[Party]) -> String {
    let role = a_role(actor.role);
    match parties
        .iter()
        .find(|p| p.role().is_none_or(|r| r == actor.role))
    {
        Some(party) => format!("{role} that is not {}", party.describe()),
        None => role.into(),
    }
}

/// A role in words, with its article.
fn a_role(role: Role) -> &'static str {
    match role {
        Role::Node => "the node",
        Role::Admin => "an admin",
        Role::Agency => "an agency",
        Role::Enterprise => "an enterprise",
        Role::Escrow => "an escrow provider",
        Role::Regulator => "a regulator",
    }
}

/// "a", "a or b", "a, b or c".
fn either(words: impl Iterator<Item = String>) -> String {
    let words: Vec<String> = words.collect();
    match words.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::examples;

    #[test]
    fn every_role_is_listed_once_and_named_as_serde_names_it() {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, examples::serde_variants_of::<Role>());
    }

    #[test]
    fn every_party_of_a_row_is_found_in_the_record_its_command_names() {
        for (command_type, permission) in table() {
            let command = examples::command(command_type);
            let named = Subject::of(&command).map(|s| s.kind());
            for party in permission.parties() {
                assert_eq!(
                    named,
                    Some(party.record_kind()),
                    "{command_type}: {party:?}"
                );
            }
        }
    }

    #[test]
    fn a_row_says_who_may_sign_in_words() {
        let words = |t| rule(t).describe();
        assert_eq!(words(CommandType::Genesis), "the node's own key");
        assert_eq!(words(CommandType::FreezeVoucher), "an admin or a regulator");
        assert_eq!(
            words(CommandType::RevokeKey),
            "the party the body names or an admin"
        );
        assert_eq!(
            words(CommandType::CancelOrder),
            "the order's enterprise or the order's agency"
        );
        assert_eq!(words(CommandType::PlaceOrder), "the voucher's holder");
        assert_eq!(
            either(["a", "b", "c"].map(String::from).into_iter()),
            "a, b or c"
        );
    }

    /// docs/FORMAT.md §1 states the table for readers of the format: each row's words and codes
    /// are the table's own.
    #[test]
    fn the_documented_table_is_the_table() {
        let doc = include_str!("../../docs/FORMAT.md");
        let section = doc
            .split("\n### Who may sign\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("FORMAT.md says who may sign");
        let documented: Vec<(String, String, String, String)> = section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                (
                    cells[1].trim_matches('`').to_string(),
                    cells[2].to_string(),
                    cells[3].replace('`', ""),
                    cells[4].to_string(),
                )
            })
            .collect();
        let stated: Vec<(String, String, String, String)> = table()
            .map(|(t, p)| {
                (
                    t.name().to_string(),
                    p.describe(),
                    p.refusal_codes().join(", "),
                    other_regions(t).describe().to_string(),
                )
            })
            .collect();
        assert_eq!(documented, stated);
    }
}
