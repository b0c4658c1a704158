//! Region founding, party registration and key revocation.

use serde::{Deserialize, Serialize};

use super::command::{GenesisBody, RegisterPartyBody, RevokeKeyBody};
use super::state::{StateError, StateRead, StateWrite};
use super::{ApplyContext, ApplyError, Event, Rejection};
use crate::limits::{MAX_NAME_BYTES, MAX_REASON_BYTES};
use crate::types::{LogIndex, RegionId};
use vledger_tlog::keys::PublicKey;

/// What a party is allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The region's server: signs checkpoints, receipts and time-driven commands.
    Node,
    /// A region's science bureau.
    Admin,
    /// A service provider.
    Agency,
    /// An SME holding vouchers.
    Enterprise,
    /// A licensed third-party payment institution.
    Escrow,
    /// An auditor, finance bureau or inspector.
    Regulator,
}

impl Role {
    /// Whether a party of this role may act on another region's node (one identity across the
    /// federation): agencies, enterprises and escrow providers serve the whole market; a
    /// region's node, admins and regulators act in their own region only.
    pub fn acts_across_regions(self) -> bool {
        match self {
            Role::Agency | Role::Enterprise | Role::Escrow => true,
            Role::Node | Role::Admin | Role::Regulator => false,
        }
    }

    /// Every role, in the order declared; a test holds the list to the variants serde knows.
    pub const ALL: [Role; 6] = [
        Role::Node,
        Role::Admin,
        Role::Agency,
        Role::Enterprise,
        Role::Escrow,
        Role::Regulator,
    ];

    /// The role's name, as the JSON spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Admin => "admin",
            Role::Agency => "agency",
            Role::Enterprise => "enterprise",
            Role::Escrow => "escrow",
            Role::Regulator => "regulator",
        }
    }
}

/// The region this node serves, as founded by genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegionRecord {
    pub region: RegionId,
    pub region_name: String,
    pub node_key: PublicKey,
    pub time_zone: String,
    pub active_admins: u32,
}

/// A registered key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartyRecord {
    pub key: PublicKey,
    pub role: Role,
    pub home_region: RegionId,
    pub name: String,
    pub registered_at: LogIndex,
    pub revoked_at: Option<LogIndex>,
    /// Set by `party.suspend`: the party may not act (or be ordered from) until reinstated.
    #[serde(default)]
    pub suspended: bool,
    /// For agencies: accredited to serve voucher orders until this time.
    #[serde(default)]
    pub accredited_until_ms: Option<u64>,
    /// The declared controlling group (实际控制人 / group), shared by related enterprises.
    #[serde(default)]
    pub controlling_group: Option<String>,
    /// Parties declared related (affiliates): no voucher order may join related parties.
    #[serde(default)]
    pub related_parties: Vec<PublicKey>,
}

impl PartyRecord {
    /// Whether two parties are related: one declares the other, or they share a controlling group.
    pub fn is_related_to(&self, other: &PartyRecord) -> bool {
        self.key == other.key
            || self.related_parties.contains(&other.key)
            || other.related_parties.contains(&self.key)
            || matches!((&self.controlling_group, &other.controlling_group), (Some(a), Some(b)) if a == b)
    }
}

const REGION_KEY: &[u8] = b"region";

/// Prefix of these records in the state, followed by the record's id.
pub const PARTY_PREFIX: &[u8] = b"party/";

pub(super) fn party_key(key: &PublicKey) -> Vec<u8> {
    let mut out = PARTY_PREFIX.to_vec();
    out.extend_from_slice(key.as_bytes());
    out
}

pub(super) fn load_region<S: StateRead>(state: &S) -> Result<Option<RegionRecord>, StateError> {
    state.get(REGION_KEY)
}

/// Reads a party by key.
pub fn load_party<S: StateRead>(
    state: &S,
    key: &PublicKey,
) -> Result<Option<PartyRecord>, StateError> {
    state.get(&party_key(key))
}

/// The signer's party, if it is registered and not revoked.
pub(super) fn active_signer<S: StateRead>(
    state: &S,
    signer: &PublicKey,
) -> Result<PartyRecord, ApplyError> {
    let party = crate::federation::find_party(state, signer)?
        .ok_or(Rejection::UnknownSigner)?
        .party;
    if let Some(revoked_at) = party.revoked_at {
        return Err(Rejection::SignerRevoked { revoked_at }.into());
    }
    if party.suspended {
        return Err(Rejection::SignerSuspended.into());
    }
    Ok(party)
}

/// Checks a text that a person reads against the rule of [`crate::text`]: at most `max` bytes,
/// NFC, no control or bidirectional formatting character, not blank.
pub(super) fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), Rejection> {
    crate::text::check_readable(value, max).map_err(|e| Rejection::InvalidField {
        field,
        reason: format!(
            "{e}; it must be 1 to {max} bytes of NFC text without control or bidirectional \
             formatting characters, not blank"
        ),
    })
}

pub(super) fn decide_genesis(
    ctx: &ApplyContext,
    body: &GenesisBody,
) -> Result<Vec<Event>, Rejection> {
    check_text("region_name", &body.region_name, MAX_NAME_BYTES)?;
    check_text("admin_name", &body.admin_name, MAX_NAME_BYTES)?;
    check_text("time_zone", &body.time_zone, MAX_NAME_BYTES)?;
    if body.admin_key == ctx.node_key {
        return Err(Rejection::InvalidField {
            field: "admin_key",
            reason: "must differ from the node's key".into(),
        });
    }
    Ok(vec![
        Event::RegionFounded {
            region: ctx.region.clone(),
            region_name: body.region_name.clone(),
            node_key: ctx.node_key,
            time_zone: body.time_zone.clone(),
        },
        Event::PartyRegistered {
            key: ctx.node_key,
            role: Role::Node,
            home_region: ctx.region.clone(),
            name: format!("{} node", body.region_name),
        },
        Event::PartyRegistered {
            key: body.admin_key,
            role: Role::Admin,
            home_region: ctx.region.clone(),
            name: body.admin_name.clone(),
        },
    ])
}

pub(super) fn decide_register<S: StateRead>(
    state: &S,
    region: &RegionRecord,
    body: &RegisterPartyBody,
) -> Result<Vec<Event>, ApplyError> {
    let key = PublicKey::from_base64(&body.key).map_err(Rejection::WeakKey)?;
    check_text("name", &body.name, MAX_NAME_BYTES)?;
    if body.role == Role::Node {
        return Err(Rejection::NodeRoleReserved.into());
    }
    if body.home_region != region.region {
        return Err(Rejection::HomeRegionMismatch {
            record: "a party",
            node_region: region.region.to_string(),
            home_region: body.home_region.to_string(),
        }
        .into());
    }
    if load_party(state, &key)?.is_some() {
        return Err(Rejection::PartyExists.into());
    }
    Ok(vec![Event::PartyRegistered {
        key,
        role: body.role,
        home_region: body.home_region.clone(),
        name: body.name.clone(),
    }])
}

pub(super) fn decide_revoke<S: StateRead>(
    state: &S,
    region: &RegionRecord,
    body: &RevokeKeyBody,
) -> Result<Vec<Event>, ApplyError> {
    check_text("reason", &body.reason, MAX_REASON_BYTES)?;
    if body.key == region.node_key {
        return Err(Rejection::CannotRevokeNodeKey.into());
    }
    let target = load_party(state, &body.key)?.ok_or(Rejection::PartyNotFound)?;
    if target.revoked_at.is_some() {
        return Err(Rejection::KeyAlreadyRevoked.into());
    }
    if target.role == Role::Admin && region.active_admins <= 1 {
        return Err(Rejection::LastAdmin.into());
    }
    Ok(vec![Event::KeyRevoked {
        key: body.key,
        reason: body.reason.clone(),
    }])
}

pub(super) fn evolve<S: StateRead + StateWrite>(
    state: &mut S,
    ctx: &ApplyContext,
    event: &Event,
) -> Result<(), StateError> {
    match event {
        Event::RegionFounded {
            region,
            region_name,
            node_key,
            time_zone,
        } => {
            let record = RegionRecord {
                region: region.clone(),
                region_name: region_name.clone(),
                node_key: *node_key,
                time_zone: time_zone.clone(),
                active_admins: 0,
            };
            state.put(REGION_KEY.to_vec(), &record);
        }
        Event::PartyRegistered {
            key,
            role,
            home_region,
            name,
        } => {
            let record = PartyRecord {
                key: *key,
                role: *role,
                home_region: home_region.clone(),
                name: name.clone(),
                registered_at: ctx.index,
                revoked_at: None,
                suspended: false,
                accredited_until_ms: None,
                controlling_group: None,
                related_parties: Vec::new(),
            };
            state.put(party_key(key), &record);
            if *role == Role::Admin {
                adjust_admins(state, 1)?;
            }
        }
        Event::KeyRevoked { key, .. } => {
            let mut record = load_party(state, key)?.ok_or_else(|| StateError::Corrupt {
                key: format!("party/{key}"),
                reason: "revoked key has no party record".into(),
            })?;
            record.revoked_at = Some(ctx.index);
            state.put(party_key(key), &record);
            if record.role == Role::Admin {
                adjust_admins(state, -1)?;
            }
        }
        _ => unreachable!("parties::evolve is called only for party events"),
    }
    Ok(())
}

fn adjust_admins<S: StateRead + StateWrite>(state: &mut S, delta: i32) -> Result<(), StateError> {
    let mut region = load_region(state)?.ok_or_else(|| StateError::Corrupt {
        key: "region".into(),
        reason: "missing while counting admins".into(),
    })?;
    region.active_admins = region
        .active_admins
        .checked_add_signed(delta)
        .expect("active admin count stays within u32 and never goes below zero");
    state.put(REGION_KEY.to_vec(), &region);
    Ok(())
}
