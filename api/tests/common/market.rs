//! A served region with one record of each kind the permission table reads (a voucher, a
//! listing, a demand, an escrow order) and a party of each role around them, and a well-formed
//! body for every command type on it.

use serde_json::{json, Value};
use vledger_domain::CommandType;
use vledger_node::writer::wall_clock_ms;
use vledger_tlog::keys::SigningKey;

use super::{fresh_key, Api};

const DAY_MS: u64 = 86_400_000;

/// The enterprise's share of order `o`, which an escrow provider funds.
pub const ESCROW_SHARE_MINOR: u64 = 50_000;

pub fn b64(key: &SigningKey) -> String {
    key.public_key().to_base64()
}

/// Region `cq` with program `p`, voucher `v` held by `enterprise`, listing `l` of `agency`,
/// demand `d` of `enterprise` and order `o`, placed by `enterprise` with `agency` and paid
/// through `escrow` (awaiting its funds). Every party named `other_*` has the same role as the
/// one it is named after and no part in the records. `revoked` and `suspended` are enterprises
/// whose key is revoked and whose party is suspended. Nothing falls due for months, so the
/// node's clock writes nothing meanwhile.
pub struct Market {
    pub api: Api,
    pub admin: SigningKey,
    pub regulator: SigningKey,
    pub enterprise: SigningKey,
    pub other_enterprise: SigningKey,
    pub agency: SigningKey,
    pub other_agency: SigningKey,
    pub escrow: SigningKey,
    pub other_escrow: SigningKey,
    pub revoked: SigningKey,
    pub suspended: SigningKey,
    pub now_ms: u64,
}

impl Market {
    pub async fn open() -> Self {
        let admin = fresh_key();
        let api = Api::start(&admin).await;
        let market = Market {
            api,
            admin,
            regulator: fresh_key(),
            enterprise: fresh_key(),
            other_enterprise: fresh_key(),
            agency: fresh_key(),
            other_agency: fresh_key(),
            escrow: fresh_key(),
            other_escrow: fresh_key(),
            revoked: fresh_key(),
            suspended: fresh_key(),
            now_ms: wall_clock_ms(),
        };
        market.populate().await;
        market
    }

    async fn populate(&self) {
        let (api, admin) = (&self.api, &self.admin);
        for (key, role) in [
            (&self.regulator, "regulator"),
            (&self.enterprise, "enterprise"),
            (&self.other_enterprise, "enterprise"),
            (&self.agency, "agency"),
            (&self.other_agency, "agency"),
            (&self.escrow, "escrow"),
            (&self.other_escrow, "escrow"),
            (&self.revoked, "enterprise"),
            (&self.suspended, "enterprise"),
        ] {
            let body = json!({ "key": b64(key), "role": role, "home_region": "cq", "name": role });
            api.ok(admin, "party.register", body).await;
        }
        let why = |key: &SigningKey| json!({ "key": b64(key), "reason": "inspection" });
        api.ok(admin, "party.revoke_key", why(&self.revoked)).await;
        api.ok(admin, "party.suspend", why(&self.suspended)).await;
        api.ok(admin, "program.create", self.program("p")).await;
        let until = self.now_ms + 300 * DAY_MS;
        let qualify = json!({ "program_id": "p", "enterprise": b64(&self.enterprise), "expires_at_ms": until });
        api.ok(admin, "enterprise.qualify", qualify).await;
        let accredit = json!({ "agency": b64(&self.agency), "expires_at_ms": until });
        api.ok(admin, "agency.accredit", accredit).await;
        let issue = json!({ "voucher_id": "v", "program_id": "p", "holder": b64(&self.enterprise),
                            "face_value_minor": 300_000 });
        api.ok(admin, "voucher.issue", issue).await;
        api.ok(&self.agency, "catalog.list", listing("l")).await;
        api.ok(&self.enterprise, "demand.post", demand("d")).await;
        let order = json!({ "order_id": "o", "listing_id": "l", "voucher_id": "v",
            "price_minor": 2 * ESCROW_SHARE_MINOR,
            "payment": { "mode": "escrow", "escrow_provider": b64(&self.escrow), "fee_minor": 0 },
            "auto_confirm_after_ms": 7 * DAY_MS });
        api.ok(&self.enterprise, "order.place", order).await;
    }

    /// A program open since yesterday for a year (50%, claims for 400 days, one review level).
    fn program(&self, id: &str) -> Value {
        json!({
            "program_id": id, "name": "vouchers", "kind": "resource_sharing", "currency": "CNY",
            "budget_minor": 10_000_000, "subsidy_ratio_bps": 5000,
            "caps": { "per_voucher_minor": 300_000, "per_order_minor": 200_000,
                      "per_enterprise_year_minor": 500_000, "per_group_year_minor": 1_000_000 },
            "eligible_categories": ["testing"], "valid_from_ms": self.now_ms - DAY_MS,
            "valid_until_ms": self.now_ms + 365 * DAY_MS,
            "claim_deadline_ms": self.now_ms + 400 * DAY_MS, "spend_regions": ["cq"],
            "cross_region_payer": "issuing_region", "use_mode": "multi", "review_levels": 1,
            "notice_period_ms": 0
        })
    }

    /// A well-formed body of `command_type` on this market's records: what a party with the
    /// right to sign it would send.
    pub fn body(&self, command_type: CommandType) -> Value {
        use CommandType as T;
        let until = self.now_ms + 300 * DAY_MS;
        let reason = "inspection";
        match command_type {
            T::Genesis => json!({ "region_name": "CQ", "admin_key": b64(&fresh_key()),
                                  "admin_name": "admin" }),
            T::RegisterParty => json!({ "key": b64(&fresh_key()), "role": "agency",
                                        "home_region": "cq", "name": "lab" }),
            T::RevokeKey => json!({ "key": b64(&self.enterprise), "reason": "key lost" }),
            T::CreateProgram => self.program("p2"),
            T::QualifyEnterprise => json!({ "program_id": "p",
                "enterprise": b64(&self.other_enterprise), "expires_at_ms": until }),
            T::IssueVoucher => json!({ "voucher_id": "v2", "program_id": "p",
                "holder": b64(&self.enterprise), "face_value_minor": 100_000 }),
            T::FreezeVoucher | T::UnfreezeVoucher | T::RevokeVoucher => {
                json!({ "voucher_id": "v", "reason": reason })
            }
            T::ExpireVoucher => json!({ "voucher_id": "v" }),
            T::AccreditAgency => {
                json!({ "agency": b64(&self.other_agency), "expires_at_ms": until })
            }
            T::SuspendParty => json!({ "key": b64(&self.other_escrow), "reason": reason }),
            T::ReinstateParty => json!({ "key": b64(&self.suspended), "reason": reason }),
            T::DeclareAffiliation => {
                json!({ "party": b64(&self.enterprise), "controlling_group": "Group" })
            }
            T::AddListing => listing("l2"),
            T::UpdateListing => json!({ "listing_id": "l", "price_minor": 900_000 }),
            T::WithdrawListing => json!({ "listing_id": "l", "reason": reason }),
            T::PostDemand => demand("d2"),
            T::CloseDemand => json!({ "demand_id": "d" }),
            T::PlaceOrder => json!({ "order_id": "o2", "listing_id": "l", "voucher_id": "v",
                "price_minor": 100_000, "payment": { "mode": "direct" },
                "auto_confirm_after_ms": DAY_MS }),
            T::CancelOrder | T::DisputeOrder | T::ClawbackClaim => {
                json!({ "order_id": "o", "reason": reason })
            }
            T::FundEscrow => json!({ "order_id": "o", "amount_minor": ESCROW_SHARE_MINOR,
                                     "reference": "BANK-1" }),
            T::AcknowledgePayment => {
                json!({ "order_id": "o", "installment": 0, "reference": "BANK-1" })
            }
            T::DeliverOrder => json!({ "order_id": "o",
                "evidence": [{ "kind": "report", "sha256": "a".repeat(64) }] }),
            T::ConfirmOrder | T::AutoConfirmOrder | T::SubmitClaim | T::ReleaseUnclaimed => {
                json!({ "order_id": "o" })
            }
            T::ResolveDispute => {
                json!({ "order_id": "o", "outcome": "refund", "reason": reason })
            }
            T::ReviewClaim => json!({ "order_id": "o", "level": 1, "decision": "approve" }),
            T::PayClaim => json!({ "order_id": "o", "reference": "TREASURY-1" }),
            T::RecoverClaim => {
                json!({ "order_id": "o", "amount_minor": 1, "reference": "TREASURY-2" })
            }
            T::Adopt => json!({ "region": "sc", "verifier_key": "sc+00000000+AQ==",
                                "checkpoint": "sc\n1\nAA==\n\n" }),
            // No payout of this market was advanced by another region: a proposal for the last
            // day has nothing to net (`statement-mismatch`), and there is no statement to sign
            // or pay (`statement-not-found`).
            T::ProposeStatement => json!({ "statement_id": "st", "creditor": "sc",
                "from_ms": self.now_ms - DAY_MS, "until_ms": self.now_ms, "lines": [],
                "gross_debtor_to_creditor_minor": 0, "gross_creditor_to_debtor_minor": 0,
                "net_minor": 0 }),
            T::SignStatement => json!({ "statement_id": "st" }),
            T::RecordStatementPayment => {
                json!({ "statement_id": "st", "amount_minor": 0, "reference": "BANK-9" })
            }
        }
    }
}

fn listing(id: &str) -> Value {
    json!({ "listing_id": id, "pool": "instruments_equipment", "category": "testing",
            "title": "材料检测", "description": "Material testing", "price_minor": 1_000_000,
            "currency": "CNY" })
}

fn demand(id: &str) -> Value {
    json!({ "demand_id": id, "pool": "instruments_equipment", "category": "testing",
            "title": "检测需求", "description": "Testing wanted", "budget_max_minor": 500_000,
            "currency": "CNY" })
}
