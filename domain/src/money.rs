//! Money and ratios: integer minor units with checked arithmetic, basis points, the subsidy rule.

use serde::de::{Error as _, Unexpected};
use serde::{Deserialize, Deserializer, Serialize};

/// Largest amount the ledger records, in minor units: below 2^53 so that every amount is
/// exactly representable in JSON by any reader (docs/FORMAT.md, events are JCS).
pub const MAX_AMOUNT_MINOR: u64 = (1 << 53) - 1;
/// 100% in basis points.
pub const FULL_RATIO_BPS: u16 = 10_000;

/// An amount in minor units (fen for CNY). Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(into = "u64")]
pub struct AmountMinor(u64);

/// An amount over [`MAX_AMOUNT_MINOR`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("amount {0} is over the largest recordable amount {MAX_AMOUNT_MINOR}")]
pub struct AmountTooLarge(pub u64);

impl AmountMinor {
    pub const ZERO: Self = Self(0);

    pub fn new(minor: u64) -> Result<Self, AmountTooLarge> {
        if minor > MAX_AMOUNT_MINOR {
            Err(AmountTooLarge(minor))
        } else {
            Ok(Self(minor))
        }
    }
    pub fn get(self) -> u64 {
        self.0
    }
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0
            .checked_add(other.0)
            .filter(|v| *v <= MAX_AMOUNT_MINOR)
            .map(Self)
    }
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl TryFrom<u64> for AmountMinor {
    type Error = AmountTooLarge;
    fn try_from(v: u64) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

// A number of the right type outside the bound is an invalid value (`invalid-field`), not a
// malformed body.
impl<'de> Deserialize<'de> for AmountMinor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let minor = u64::deserialize(deserializer)?;
        Self::new(minor).map_err(|_| {
            D::Error::invalid_value(
                Unexpected::Unsigned(minor),
                &"an amount of at most 9007199254740991 (2^53 - 1) minor units",
            )
        })
    }
}

impl From<AmountMinor> for u64 {
    fn from(a: AmountMinor) -> u64 {
        a.0
    }
}

impl std::fmt::Display for AmountMinor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A ratio in basis points, 0 to 10,000 (5000 = 50%).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "u16")]
pub struct BasisPoints(u16);

/// A ratio over 100%.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ratio {0} bps is over {FULL_RATIO_BPS} bps (100%)")]
pub struct RatioTooLarge(pub u16);

impl BasisPoints {
    pub fn new(bps: u16) -> Result<Self, RatioTooLarge> {
        if bps > FULL_RATIO_BPS {
            Err(RatioTooLarge(bps))
        } else {
            Ok(Self(bps))
        }
    }
    pub fn get(self) -> u16 {
        self.0
    }
    /// `amount × ratio`, rounded down (the subsidy rounding rule: never pay a fen too many).
    pub fn share_of(self, amount: AmountMinor) -> AmountMinor {
        let product = u128::from(amount.0) * u128::from(self.0) / u128::from(FULL_RATIO_BPS);
        AmountMinor(product as u64)
    }
}

impl TryFrom<u16> for BasisPoints {
    type Error = RatioTooLarge;
    fn try_from(v: u16) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl<'de> Deserialize<'de> for BasisPoints {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bps = u64::deserialize(deserializer)?;
        u16::try_from(bps)
            .ok()
            .and_then(|bps| Self::new(bps).ok())
            .ok_or_else(|| {
                D::Error::invalid_value(
                    Unexpected::Unsigned(bps),
                    &"a ratio of 0 to 10000 basis points",
                )
            })
    }
}

impl From<BasisPoints> for u16 {
    fn from(b: BasisPoints) -> u16 {
        b.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_rounds_down_and_never_exceeds_the_amount() {
        let half = BasisPoints::new(5000).unwrap();
        assert_eq!(half.share_of(AmountMinor::new(101).unwrap()).get(), 50);
        let third = BasisPoints::new(3333).unwrap();
        assert_eq!(third.share_of(AmountMinor::new(100).unwrap()).get(), 33);
        let all = BasisPoints::new(FULL_RATIO_BPS).unwrap();
        let max = AmountMinor::new(MAX_AMOUNT_MINOR).unwrap();
        assert_eq!(all.share_of(max), max);
    }

    #[test]
    fn bounds_are_enforced() {
        assert!(AmountMinor::new(MAX_AMOUNT_MINOR + 1).is_err());
        assert!(BasisPoints::new(10_001).is_err());
        let max = AmountMinor::new(MAX_AMOUNT_MINOR).unwrap();
        assert_eq!(max.checked_add(AmountMinor::new(1).unwrap()), None);
        assert_eq!(
            AmountMinor::ZERO.checked_sub(AmountMinor::new(1).unwrap()),
            None
        );
        assert!(serde_json::from_str::<AmountMinor>("9007199254740992").is_err());
        assert!(serde_json::from_str::<BasisPoints>("10001").is_err());
    }
}
