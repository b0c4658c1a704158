//! Who may sign what, over HTTP, generated from the permission table: for every command type the
//! OpenAPI document lists, signed by a party of every role, by the parties of the records the
//! command names and others of their roles, by an unregistered key, a revoked key, a suspended
//! party and a key of another region, a well-formed command is either refused with exactly the
//! status and problem the table says, writing nothing, or not refused for who signed it.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;
use vledger_domain::permissions::{self, Party, Permission, Signer};
use vledger_domain::{CommandType, Role};
use vledger_tlog::keys::SigningKey;

use common::market::Market;

/// Who signs a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// A party of this role that is no party of the market's records (the node and the
    /// admin, regulator of the region; an agency, enterprise or escrow provider named `other_*`).
    Role(Role),
    /// The enterprise of the records: it holds the voucher, posted the demand, placed the
    /// order, and is the party the bodies name.
    Enterprise,
    /// The agency of the records: it listed the listing and serves the order.
    Agency,
    /// The order's escrow provider.
    Escrow,
    Unregistered,
    Revoked,
    Suspended,
    /// The admin of region `sc`, signing a command meant for `sc`.
    ForeignForItsRegion,
    /// The admin of region `sc`, signing a command meant for `cq`.
    ForeignForThisRegion,
}

impl Who {
    fn all() -> Vec<Who> {
        let mut all: Vec<Who> = Role::ALL.into_iter().map(Who::Role).collect();
        all.extend([
            Who::Enterprise,
            Who::Agency,
            Who::Escrow,
            Who::Unregistered,
            Who::Revoked,
            Who::Suspended,
            Who::ForeignForItsRegion,
            Who::ForeignForThisRegion,
        ]);
        all
    }

    /// The role of a registered, active signer.
    fn role(self) -> Option<Role> {
        match self {
            Who::Role(role) => Some(role),
            Who::Enterprise => Some(Role::Enterprise),
            Who::Agency => Some(Role::Agency),
            Who::Escrow => Some(Role::Escrow),
            _ => None,
        }
    }

    /// Whether the signer is `party` of the record a market command names.
    fn is(self, party: Party) -> bool {
        match party {
            Party::Named
            | Party::VoucherHolder
            | Party::DemandEnterprise
            | Party::OrderEnterprise => self == Who::Enterprise,
            Party::ListingAgency | Party::OrderAgency => self == Who::Agency,
            // Every admin of the node is of the node's region, the listing's, a statement's
            // debtor and the payer of a claim of this region's agencies.
            Party::ListingRegionAdmin | Party::StatementRegionAdmin | Party::ClaimPayerAdmin => {
                self == Who::Role(Role::Admin)
            }
            Party::OrderEscrowProvider => self == Who::Escrow,
        }
    }
}

/// What a case must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Refused with this status and problem code, and nothing written.
    Refused(u16, &'static str),
    /// Not refused for who signed it (a later rule of the command may still refuse it).
    Admitted,
}

/// What the table says of `who` signing a command of `command_type`.
fn expected(command_type: CommandType, permission: Permission, who: Who) -> Outcome {
    use Outcome::{Admitted, Refused};
    match who {
        Who::ForeignForItsRegion => return Refused(421, "wrong-region"),
        _ if command_type == CommandType::Genesis => return Refused(409, "genesis-already-done"),
        Who::Unregistered | Who::ForeignForThisRegion => return Refused(403, "unknown-signer"),
        Who::Revoked => return Refused(403, "signer-revoked"),
        Who::Suspended => return Refused(403, "signer-suspended"),
        _ => {}
    }
    let role = who.role().expect("an active party");
    let admits = |signer: &Signer| match signer {
        Signer::Role(r) => *r == role,
        Signer::Party(party) => who.is(*party),
    };
    match permission {
        Permission::NodeKey => unreachable!("only genesis, refused above"),
        Permission::Roles(roles) if roles.contains(&role) => Admitted,
        Permission::Roles(_) => Refused(403, "not-authorized"),
        Permission::AnyOf(signers) if signers.iter().any(admits) => Admitted,
        Permission::AnyOf(_) => match permission.parties().first() {
            Some(party) => Refused(403, party.refusal_code()),
            None => Refused(403, "not-authorized"),
        },
        Permission::RoleAndParty(r, _) if r != role => Refused(403, "not-authorized"),
        Permission::RoleAndParty(_, party) if !who.is(party) => Refused(403, party.refusal_code()),
        Permission::RoleAndParty(..) => Admitted,
    }
}

/// Every code that refuses a command for who signed it.
fn permission_codes() -> BTreeSet<&'static str> {
    let mut codes: BTreeSet<&str> = permissions::table()
        .flat_map(|(_, p)| p.refusal_codes())
        .collect();
    codes.extend([
        "unknown-signer",
        "signer-revoked",
        "signer-suspended",
        "wrong-region",
    ]);
    codes
}

/// The command types of the OpenAPI document's `Command` schema.
fn documented_command_types(doc: &Value) -> BTreeSet<String> {
    let variants = doc["components"]["schemas"]["Command"]["oneOf"]
        .as_array()
        .expect("the document has a Command schema of variants");
    variants
        .iter()
        .map(|variant| {
            let names = variant["properties"]["type"]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("a Command variant names its type: {variant}"));
            assert_eq!(names.len(), 1, "{variant}");
            names[0].as_str().unwrap().to_string()
        })
        .collect()
}

struct Signers<'a> {
    market: &'a Market,
    foreign: &'a SigningKey,
    unregistered: SigningKey,
}

impl Signers<'_> {
    fn key(&self, who: Who) -> &SigningKey {
        let m = self.market;
        match who {
            Who::Role(Role::Node) => &m.api.node_key,
            Who::Role(Role::Admin) => &m.admin,
            Who::Role(Role::Regulator) => &m.regulator,
            Who::Role(Role::Enterprise) => &m.other_enterprise,
            Who::Role(Role::Agency) => &m.other_agency,
            Who::Role(Role::Escrow) => &m.other_escrow,
            Who::Enterprise => &m.enterprise,
            Who::Agency => &m.agency,
            Who::Escrow => &m.escrow,
            Who::Unregistered => &self.unregistered,
            Who::Revoked => &m.revoked,
            Who::Suspended => &m.suspended,
            Who::ForeignForItsRegion | Who::ForeignForThisRegion => self.foreign,
        }
    }
}

/// The cases of one command type, on a market of its own: the refusals first, so that nothing
/// an admitted command changes can be seen by them; among the admitted, the parties of the
/// records before the roles, so that a party acting on itself (an enterprise revoking its own
/// key) is not first acted on by an admin. Returns the number of cases.
async fn check_row(command_type: CommandType, foreign: &SigningKey) -> usize {
    let permission = permissions::rule(command_type);
    let market = Market::open().await;
    let signers = Signers {
        market: &market,
        foreign,
        unregistered: common::fresh_key(),
    };
    let mut cases: Vec<(Who, Outcome)> = Who::all()
        .into_iter()
        .map(|who| (who, expected(command_type, permission, who)))
        .collect();
    cases
        .sort_by_key(|(who, outcome)| (*outcome == Outcome::Admitted, matches!(who, Who::Role(_))));
    let permission_codes = permission_codes();
    let name = command_type.name();
    let api = &market.api;
    for (who, outcome) in &cases {
        let what = format!("{name} signed by {who:?}");
        let region = match who {
            Who::ForeignForItsRegion => "sc",
            _ => "cq",
        };
        let size = api.tree_size().await;
        let body = market.body(command_type);
        let (status, answer) = api.send_for(region, signers.key(*who), name, body).await;
        match *outcome {
            Outcome::Refused(expected_status, code) => {
                common::expect_problem(&what, (status, &answer), expected_status, code);
                assert_eq!(api.tree_size().await, size, "{what} wrote");
                if expected_status == 403 && permission.refusal_codes().contains(&code) {
                    let required = format!(
                        "`{name}` must be signed by {}; the signer is ",
                        permission.describe()
                    );
                    let detail = answer["detail"].as_str().unwrap();
                    assert!(detail.starts_with(&required), "{what}: {detail}");
                }
            }
            Outcome::Admitted if status < 300 => {}
            Outcome::Admitted => {
                let code = answer["code"].as_str().unwrap_or_default();
                assert!(
                    !permission_codes.contains(code),
                    "{what} is refused for who signed it: {answer}"
                );
            }
        }
    }
    cases.len()
}

#[tokio::test]
async fn the_documents_command_types_are_the_tables() {
    let api = common::Api::start(&common::fresh_key()).await;
    let documented = documented_command_types(&api.get("/openapi.json").await);
    let table: BTreeSet<String> = permissions::table()
        .map(|(t, _)| t.name().to_string())
        .collect();
    assert_eq!(documented, table);
    assert_eq!(table.len(), CommandType::ALL.len());
}

#[tokio::test]
async fn every_signer_of_every_command_type_gets_what_the_table_says() {
    let api = common::Api::start(&common::fresh_key()).await;
    let documented = documented_command_types(&api.get("/openapi.json").await);
    let foreign = common::fresh_key();
    let (_sc, _sc_dir) = common::open_node_in("sc", &foreign, &common::fresh_key());
    let mut cases = 0;
    for (command_type, _) in permissions::table() {
        assert!(documented.contains(command_type.name()), "{command_type}");
        cases += check_row(command_type, &foreign).await;
    }
    assert_eq!(cases, CommandType::ALL.len() * Who::all().len());
    println!("{cases} authorization cases");
}
