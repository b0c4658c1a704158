//! OpenAPI schemas of the ledger's value types whose JSON form is a checked string or number
//! (they serialize through `try_from`/`into`, so the derived schema would not say what they
//! accept).

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::catalog::Industry;
use crate::limits::{
    MAX_DURATION_MS, MAX_INDUSTRY_BYTES, MAX_REGION_ID_BYTES, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS,
};
use crate::money::{AmountMinor, BasisPoints, MAX_AMOUNT_MINOR};
use crate::types::{DurationMs, RecordId, RegionId, TimestampMs, MAX_RECORD_ID_BYTES};

fn string(description: &str, pattern: &str, min: usize, max: usize) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .min_length(Some(min))
        .max_length(Some(max))
        .into()
}

fn integer(description: &str, max: u64) -> RefOr<Schema> {
    integer_in(description, 0, max)
}

fn integer_in(description: &str, min: u64, max: u64) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .description(Some(description))
        .minimum(Some(min as f64))
        .maximum(Some(max as f64))
        .into()
}

impl PartialSchema for RecordId {
    fn schema() -> RefOr<Schema> {
        string(
            "A record identifier chosen by the command's author: ASCII letters, digits, `.`, `_` \
             and `-`, starting with a letter or a digit (so never `.` or `..`).",
            "^[A-Za-z0-9][A-Za-z0-9._-]*$",
            1,
            MAX_RECORD_ID_BYTES,
        )
    }
}
impl ToSchema for RecordId {}

impl PartialSchema for RegionId {
    fn schema() -> RefOr<Schema> {
        string(
            "A region identifier, e.g. `cq` or `cd`.",
            "^[a-z][a-z0-9-]*$",
            1,
            MAX_REGION_ID_BYTES,
        )
    }
}
impl ToSchema for RegionId {}

impl PartialSchema for Industry {
    fn schema() -> RefOr<Schema> {
        string(
            "The name of an industry pool, e.g. `automotive`.",
            "^[a-z][a-z0-9_]+$",
            2,
            MAX_INDUSTRY_BYTES,
        )
    }
}
impl ToSchema for Industry {}

impl PartialSchema for AmountMinor {
    fn schema() -> RefOr<Schema> {
        integer(
            "An amount in the currency's minor unit (fen for CNY), below 2^53.",
            MAX_AMOUNT_MINOR,
        )
    }
}
impl ToSchema for AmountMinor {}

impl PartialSchema for BasisPoints {
    fn schema() -> RefOr<Schema> {
        integer("A ratio in basis points: 5000 is 50%.", 10_000)
    }
}
impl ToSchema for BasisPoints {}

impl PartialSchema for TimestampMs {
    fn schema() -> RefOr<Schema> {
        integer_in(
            "An instant in milliseconds since the Unix epoch, from 2000-01-01T00:00:00Z to \
             9999-12-31T23:59:59.999Z.",
            MIN_TIMESTAMP_MS,
            MAX_TIMESTAMP_MS,
        )
    }
}
impl ToSchema for TimestampMs {}

impl PartialSchema for DurationMs {
    fn schema() -> RefOr<Schema> {
        integer(
            "A duration in milliseconds, at most ten years of 366 days.",
            MAX_DURATION_MS,
        )
    }
}
impl ToSchema for DurationMs {}
