//! The OpenAPI schema of a public key (its JSON form is a checked string, so the derived schema
//! would not say what it accepts). Built with the `openapi` feature.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::keys::PublicKey;

impl PartialSchema for PublicKey {
    fn schema() -> RefOr<Schema> {
        // 32 bytes take 43 characters and one `=`; the last character carries 4 bits of the key
        // and 2 zero bits, so only 16 characters can be last (base64 decoding refuses others).
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("An ed25519 public key, 32 bytes in standard base64."))
            .pattern(Some("^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"))
            .min_length(Some(44))
            .max_length(Some(44))
            .into()
    }
}
impl ToSchema for PublicKey {}
