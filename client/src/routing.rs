//! Sending each command to the node of the region whose log it belongs in, from the federation
//! map, so that a user names the record and not the node.
//!
//! [`Federation::discover`] reads the map from any node (`GET /v1/federation`: the node itself
//! and every peer with its URL). [`Federation::home_of`] applies the domain's routing rule
//! ([`vledger_domain::routing::home_log`]): the signer's home region, found from
//! `GET /v1/parties/{key}`, or the region whose node holds the record the body names (a
//! voucher, an order, a demand, a statement), asked of every region's node. A record that two
//! regions hold under one id is ambiguous, and the caller names the region.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use vledger_domain::routing::{home_log, HomeLog};
use vledger_domain::types::RegionId;
use vledger_domain::{Command, PartyRecord};
use vledger_tlog::keys::{PublicKey, SigningKey};
use vledger_wire::http::{CommandAccepted, FederationView};

use crate::{path_segment, Client, ClientError};

/// Why a command could not be routed or submitted.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The body is not a command of this type.
    #[error("the command cannot be routed: {0}")]
    Invalid(String),
    /// Only a node signs it, for its own log.
    #[error("`{0}` is signed by a node for its own log; no client submits it")]
    NodeOwn(String),
    /// No region of the federation holds the record the command names.
    #[error("no region of the federation holds {what} `{id}` (asked {asked})")]
    NotFound {
        what: &'static str,
        id: String,
        asked: String,
    },
    /// Several regions hold a record of that id.
    #[error("{what} `{id}` exists in regions {regions}; name the region to send the command to")]
    Ambiguous {
        what: &'static str,
        id: String,
        regions: String,
    },
    /// The signer is not a party any node of the federation knows.
    #[error("no node of the federation knows the signer {0}")]
    UnknownSigner(String),
    /// The region has no node in the federation map.
    #[error("region `{0}` is not in the federation map (regions: {1})")]
    UnknownRegion(String, String),
}

/// The nodes of a federation, one per region.
pub struct Federation {
    /// The node the map was read from.
    first: RegionId,
    nodes: BTreeMap<RegionId, Client>,
}

impl Federation {
    /// The federation as the node at `url` knows it: that node, and every peer of its map.
    pub fn discover(url: &str) -> Result<Self, ClientError> {
        let client = Client::new(url);
        let view: FederationView = client.get_json("/v1/federation", &[])?;
        let region_of = |text: &str, path: &str| {
            RegionId::try_from(text.to_string()).map_err(|e| ClientError::Unexpected {
                url: client.url(path),
                reason: format!("region `{text}`: {e}"),
            })
        };
        let first = region_of(&view.region, "/v1/federation")?;
        let mut nodes = BTreeMap::new();
        for peer in &view.peers {
            nodes.insert(
                region_of(&peer.region, "/v1/federation")?,
                Client::new(&peer.url),
            );
        }
        nodes.insert(first.clone(), client);
        Ok(Self { first, nodes })
    }

    /// The regions of the map, in order.
    pub fn regions(&self) -> impl Iterator<Item = &RegionId> {
        self.nodes.keys()
    }

    /// The node of `region`.
    pub fn node(&self, region: &RegionId) -> Result<&Client, RouteError> {
        self.nodes
            .get(region)
            .ok_or_else(|| RouteError::UnknownRegion(region.to_string(), self.region_list()))
    }

    fn region_list(&self) -> String {
        let names: Vec<&str> = self.nodes.keys().map(RegionId::as_str).collect();
        names.join(", ")
    }

    /// The region whose log a command of `command_type` with `body`, signed by `signer`,
    /// belongs in.
    pub fn home_of(
        &self,
        signer: &PublicKey,
        command_type: &str,
        body: &Value,
    ) -> Result<RegionId, RouteError> {
        let command = Command::parse(command_type, body)
            .map_err(|rejection| RouteError::Invalid(rejection.to_string()))?;
        let (what, path, id) = match home_log(&command) {
            HomeLog::NodeOwn => return Err(RouteError::NodeOwn(command_type.into())),
            HomeLog::Signer => return self.home_region_of(signer),
            HomeLog::Voucher(id) => ("voucher", "/v1/vouchers", id),
            HomeLog::Order(id) => ("order", "/v1/orders", id),
            HomeLog::Demand(id) => ("demand", "/v1/catalog/demands", id),
            HomeLog::Statement(id) => ("statement", "/v1/settlement/statements", id),
        };
        let path = format!("{path}/{}", path_segment(id.as_str()));
        let mut holders = Vec::new();
        let mut unreachable = None;
        for (region, node) in &self.nodes {
            match node.get_json::<Value>(&path, &[]) {
                Ok(_) => holders.push(region.as_str()),
                Err(ClientError::Problem(problem)) if problem.status == 404 => {}
                Err(e) => unreachable = Some(e),
            }
        }
        match (holders.as_slice(), unreachable) {
            ([region], _) => Ok(RegionId::try_from(region.to_string()).expect("a map region")),
            ([], Some(e)) => Err(e.into()),
            ([], None) => Err(RouteError::NotFound {
                what,
                id: id.to_string(),
                asked: self.region_list(),
            }),
            (regions, _) => Err(RouteError::Ambiguous {
                what,
                id: id.to_string(),
                regions: regions.join(", "),
            }),
        }
    }

    /// The signer's home region, as the node the map was read from knows it (it knows every
    /// party of the regions it adopted), else as its own region's node does.
    fn home_region_of(&self, signer: &PublicKey) -> Result<RegionId, RouteError> {
        let first = &self.nodes[&self.first];
        let ask = |node: &Client| match node.party(signer) {
            Ok(party) => Ok(Some(party)),
            Err(ClientError::Problem(problem)) if problem.status == 404 => Ok(None),
            Err(e) => Err(e),
        };
        if let Some(party) = ask(first)? {
            return Ok(party.home_region);
        }
        for node in self.nodes.values() {
            if let Some(PartyRecord { home_region, .. }) = ask(node).ok().flatten() {
                return Ok(home_region);
            }
        }
        Err(RouteError::UnknownSigner(signer.to_base64()))
    }

    /// Signs and submits the command to the node of the region whose log it belongs in (or of
    /// `region`, when the caller names it); returns that region and the node's answer.
    pub fn submit_with_nonce(
        &self,
        key: &SigningKey,
        command_type: &str,
        body: &impl Serialize,
        nonce: &str,
        region: Option<&RegionId>,
    ) -> Result<(RegionId, CommandAccepted), RouteError> {
        let body = serde_json::to_value(body)
            .map_err(|e| RouteError::Invalid(format!("the body does not serialize: {e}")))?;
        let region = match region {
            Some(region) => region.clone(),
            None => self.home_of(&key.public_key(), command_type, &body)?,
        };
        let accepted = self
            .node(&region)?
            .submit_with_nonce(key, command_type, &body, nonce)?;
        Ok((region, accepted))
    }
}
