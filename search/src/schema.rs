//! The index's schema: one document per active listing of any region, keyed by the region
//! whose log holds it and its id.

use sha2::{Digest, Sha256};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST,
    INDEXED, STRING,
};
use tantivy::TantivyDocument;
use vledger_domain::catalog::{ListingRecord, Pool};
use vledger_domain::types::RegionId;

use crate::tokenizer::CATALOG_TOKENIZER;

/// The version of the schema and of the text analysis; an index of another version is rebuilt.
pub const SCHEMA_VERSION: u32 = 1;

/// The fields of a listing's document.
#[derive(Clone, Copy)]
pub struct Fields {
    /// `<log region>/<listing id>`: what an update or a withdrawal deletes by.
    pub key: Field,
    pub listing_id: Field,
    /// The region whose log holds the listing (this node's own or an adopted region).
    pub region: Field,
    pub title: Field,
    pub description: Field,
    pub tags: Field,
    pub pool: Field,
    pub industry: Field,
    pub category: Field,
    pub currency: Field,
    pub unit: Field,
    /// The agency's key, standard base64.
    pub agency: Field,
    pub price: Field,
    /// The last of a ranking's sort keys, for pages that never repeat a listing: the first
    /// eight bytes of SHA-256 of `key`.
    pub tie: Field,
}

/// The text fields searched, and how much a hit in each counts.
pub const TEXT_BOOSTS: [(&str, f32); 3] = [("title", 3.0), ("tags", 2.0), ("description", 1.0)];

/// The fields faceted, as the API names them.
pub const FACETS: [&str; 4] = ["pool", "industry", "region", "category"];

impl Fields {
    pub fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(CATALOG_TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let keyword = STRING | FAST;
        let fields = Fields {
            key: builder.add_text_field("key", STRING),
            listing_id: builder.add_text_field("listing_id", FAST),
            region: builder.add_text_field("region", keyword.clone()),
            title: builder.add_text_field("title", text.clone()),
            description: builder.add_text_field("description", text.clone()),
            tags: builder.add_text_field("tags", text),
            pool: builder.add_text_field("pool", keyword.clone()),
            industry: builder.add_text_field("industry", keyword.clone()),
            category: builder.add_text_field("category", keyword.clone()),
            currency: builder.add_text_field("currency", STRING),
            unit: builder.add_text_field("unit", STRING),
            agency: builder.add_text_field("agency", STRING),
            price: builder.add_u64_field("price", NumericOptions::default() | INDEXED | FAST),
            tie: builder.add_u64_field("tie", FAST),
        };
        (builder.build(), fields)
    }

    /// The document of an active listing held in `region`'s log.
    pub fn document(&self, region: &RegionId, listing: &ListingRecord) -> TantivyDocument {
        let key = document_key(region, &listing.listing_id);
        let mut doc = TantivyDocument::default();
        doc.add_u64(self.tie, tie_of(&key));
        doc.add_text(self.key, &key);
        doc.add_text(self.listing_id, listing.listing_id.as_str());
        doc.add_text(self.region, region.as_str());
        doc.add_text(self.title, &listing.title);
        doc.add_text(self.description, &listing.description);
        for tag in &listing.tags {
            doc.add_text(self.tags, tag);
        }
        doc.add_text(self.pool, pool_name(listing.pool));
        if let Some(industry) = &listing.industry {
            doc.add_text(self.industry, industry.as_str());
        }
        doc.add_text(self.category, &listing.category);
        doc.add_text(self.currency, &listing.currency);
        if let Some(unit) = &listing.unit {
            doc.add_text(self.unit, unit);
        }
        doc.add_text(self.agency, listing.agency.to_base64());
        doc.add_u64(self.price, listing.price_minor);
        doc
    }

    pub fn by_name(&self, name: &str) -> Option<Field> {
        Some(match name {
            "title" => self.title,
            "description" => self.description,
            "tags" => self.tags,
            "pool" => self.pool,
            "industry" => self.industry,
            "region" => self.region,
            "category" => self.category,
            _ => return None,
        })
    }
}

/// The key of a listing's document.
pub fn document_key(region: &RegionId, listing_id: &vledger_domain::types::RecordId) -> String {
    format!("{region}/{listing_id}")
}

/// The tie-breaking sort key of a document.
pub fn tie_of(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"))
}

/// A pool as the API names it (its serde name).
pub fn pool_name(pool: Pool) -> &'static str {
    match pool {
        Pool::Users => "users",
        Pool::InstrumentsEquipment => "instruments_equipment",
        Pool::ScienceData => "science_data",
        Pool::Literature => "literature",
        Pool::Achievements => "achievements",
        Pool::Talent => "talent",
        Pool::InstitutionsBases => "institutions_bases",
        Pool::Industry => "industry",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_are_the_api_names() {
        for pool in [
            Pool::Users,
            Pool::InstrumentsEquipment,
            Pool::ScienceData,
            Pool::Literature,
            Pool::Achievements,
            Pool::Talent,
            Pool::InstitutionsBases,
            Pool::Industry,
        ] {
            assert_eq!(
                serde_json::to_value(pool).unwrap(),
                serde_json::json!(pool_name(pool))
            );
        }
    }
}
